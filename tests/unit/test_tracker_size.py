"""The tracker's size budget: under 4 KiB gzipped, reported on every run."""

from __future__ import annotations

import gzip

import pytest

from tippen_rt.http._tracker_assets import compact_script, tracker_dir

#: The script as the package holds it (src/tippen_rt/tracker/ in the repository).
TRACKER = tracker_dir() / "tippen-app-tracker.js"
BUDGET_GZIP_BYTES = 4096


def test_tracker_is_under_4_kib_gzipped(capsys: pytest.CaptureFixture[str]) -> None:
    source = TRACKER.read_text()
    served = compact_script(source).encode()
    gzipped = len(gzip.compress(served, compresslevel=9, mtime=0))
    with capsys.disabled():
        print(
            f"\n[tracker] {TRACKER.name}: {len(source.encode())} bytes of source,"
            f" served {len(served)} bytes, {gzipped} gzipped (budget {BUDGET_GZIP_BYTES})"
        )
    assert gzipped < BUDGET_GZIP_BYTES


def test_compacting_keeps_every_line_of_code() -> None:
    source = TRACKER.read_text()
    assert "`" not in source  # no template literal could span lines
    served = compact_script(source)
    code = [line.strip() for line in source.splitlines()]
    code = [line for line in code if line and not line.startswith("//")]
    assert served.splitlines() == code
    assert served.startswith("/*! tippen-rt tracker")


def test_tracker_is_one_iife_without_dependencies() -> None:
    source = TRACKER.read_text()
    code = source.split("*/", 1)[1].strip()
    assert code.startswith("(function (w, d) {")
    assert code.endswith("})(window, document);")
    for forbidden in ("import ", "require(", "document.cookie", ".value"):
        assert forbidden not in source, forbidden
