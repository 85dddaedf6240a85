# The two commands a newcomer needs:
#   make run    install and start the service (SQLite, no Redis, no Slack)
#   make test   install everything and run every test, lint and type check
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PORT ?= 8080
LINT_PATHS := src tests $(wildcard bench)

.PHONY: run test lint typecheck unit system-deps bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts
