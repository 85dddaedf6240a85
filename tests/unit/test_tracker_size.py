"""The tracker's size budget: under 4 KiB gzipped, reported on every run."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

TRACKER = Path(__file__).resolve().parents[2] / "tracker" / "tippen-app-tracker.js"
BUDGET_GZIP_BYTES = 4096


def test_tracker_is_under_4_kib_gzipped(capsys: pytest.CaptureFixture[str]) -> None:
    source = TRACKER.read_bytes()
    gzipped = len(gzip.compress(source, compresslevel=9, mtime=0))
    with capsys.disabled():
        print(
            f"\n[tracker] {TRACKER.name}: {len(source)} bytes, {gzipped} gzipped"
            f" (budget {BUDGET_GZIP_BYTES})"
        )
    assert gzipped < BUDGET_GZIP_BYTES


def test_tracker_is_one_iife_without_dependencies() -> None:
    source = TRACKER.read_text()
    code = source.split("*/", 1)[1].strip()
    assert code.startswith("(function (w, d) {")
    assert code.endswith("})(window, document);")
    for forbidden in ("import ", "require(", "document.cookie", ".value"):
        assert forbidden not in source, forbidden
