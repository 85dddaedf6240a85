"""A benchmark's line in results.jsonl says which dependency versions it ran with."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import orjson
from bench._report import Report, record


def test_each_result_records_the_installed_versions_and_the_lock(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    record([Report("demo", figures={"x": 1})], path=results)
    (line,) = results.read_bytes().splitlines()
    deps = orjson.loads(line)["deps"]
    for name in ("trio", "hypercorn", "quart", "orjson"):
        assert deps["packages"][name] == importlib.metadata.version(name)
    assert len(deps["lock_sha256"]) == 16
    # make installed this venv from the lock, and nothing moved since.
    assert deps["matches_lock"] is True
