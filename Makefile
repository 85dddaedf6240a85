# The two commands a newcomer needs:
#   make run    install and start the service (SQLite, no Redis, no Slack)
#   make test   install everything and run every test, lint and type check
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PORT ?= 8080
LINT_PATHS := src tests $(wildcard bench)

.PHONY: run test lint typecheck unit system-deps bench clean lock

# Exact versions from the lock (requirements-dev.txt: the service, Redis and
# the test tools), then the project itself, editable, adding nothing.
$(BIN)/.installed: pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# After a change to the dependencies in pyproject.toml: the lock files again
# (requirements.txt: what the service runs with; requirements-dev.txt: + tests).
# `make lock UPGRADE=--upgrade` moves every pin to the newest release that fits.
LOCK_FLAGS := -q --strip-extras --no-emit-index-url --no-emit-find-links
lock:
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q pip-tools
	.lock-venv/bin/pip-compile $(LOCK_FLAGS) $(UPGRADE) --extra redis -o requirements.txt pyproject.toml
	.lock-venv/bin/pip-compile $(LOCK_FLAGS) $(UPGRADE) --extra redis --extra test -o requirements-dev.txt pyproject.toml
	rm -rf .lock-venv

run: $(BIN)/.installed
	$(BIN)/tippen-rt serve --demo --port $(PORT)

system-deps:
	./scripts/ensure-system-deps.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest -m "not browser"

test: $(BIN)/.installed system-deps lint typecheck
	$(BIN)/pytest

bench: $(BIN)/.installed
	TIPPEN_BENCH_DEPS=1 ./scripts/ensure-system-deps.sh
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .lock-venv .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts
