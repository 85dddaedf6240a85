"""The tracker's size budget (under 4 KiB gzipped as served, reported on every
run) and what minifying may and may not change."""

from __future__ import annotations

import gzip
import re

import pytest
from calmjs.parse import es5
from calmjs.parse.exceptions import ECMASyntaxError
from calmjs.parse.unparsers.es5 import minify_print

from tippen_rt.http._minify_js import minify_script
from tippen_rt.http._tracker_assets import tracker_dir

#: The script as the package holds it (src/tippen_rt/tracker/ in the repository).
TRACKER = tracker_dir() / "tippen-app-tracker.js"
#: The second script: loaded only while a user is flagged (call invitations).
INVITE = tracker_dir() / "tippen-invite.js"
BUDGET_GZIP_BYTES = 4096


def gzipped_size(text: str) -> int:
    return len(gzip.compress(text.encode(), compresslevel=9, mtime=0))


def test_tracker_is_under_4_kib_gzipped(capsys: pytest.CaptureFixture[str]) -> None:
    source = TRACKER.read_text()
    served = minify_script(source)
    gzipped = gzipped_size(served)
    with capsys.disabled():
        print(
            f"\n[tracker] {TRACKER.name}: {len(source.encode())} bytes of source,"
            f" served {len(served.encode())} bytes, {gzipped} gzipped (budget {BUDGET_GZIP_BYTES})"
        )
    assert gzipped < BUDGET_GZIP_BYTES


@pytest.mark.parametrize("script", [TRACKER, INVITE], ids=lambda t: t.name)
def test_minifying_keeps_the_licence_line_and_every_public_name(script: object) -> None:
    source = script.read_text()  # type: ignore[attr-defined]
    served = minify_script(source)
    assert served.split("\n", 1)[0] == source.split("\n", 1)[0]
    assert served.startswith("/*! tippen-rt")
    es5(served)  # what is served parses again
    # Property names (the API apps call, the fields the server reads) and
    # strings stay as written; only local variables get short names.
    code = minify_print(es5(source), obfuscate=False)  # no comments, every name
    names = set(re.findall(r"\.([A-Za-z_]\w*)", code)) | set(
        re.findall(r"[{,]([A-Za-z_]\w*):", code)
    )
    assert {"tippen", "apiKey", "userId"} & names
    for name in names:
        assert re.search(rf"[.{{,]{name}\b", served), name
    for text in re.findall(r"'(?:[^'\\]|\\.)*'", code):
        assert text in served, text
    assert len(served) < len(code) < 0.7 * len(source)


def test_minifying_what_does_not_parse_is_refused() -> None:
    with pytest.raises(ECMASyntaxError):
        minify_script("/*! x */\nvar a = ;")
    assert minify_script("var longName = 1; function f(someArg) { return someArg + longName; }")


def test_tracker_is_one_iife_without_dependencies() -> None:
    source = TRACKER.read_text()
    code = source.split("*/", 1)[1].strip()
    assert code.startswith("(function (w, d) {")
    assert code.endswith("})(window, document);")
    for forbidden in ("import ", "require(", "document.cookie", ".value"):
        assert forbidden not in source, forbidden


def test_the_invitation_script_is_small_and_self_contained(
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = INVITE.read_text()
    served = minify_script(source)
    gzipped = gzipped_size(served)
    with capsys.disabled():
        print(f"\n[tracker] {INVITE.name}: served {len(served)} bytes, {gzipped} gzipped")
    assert gzipped < BUDGET_GZIP_BYTES
    assert source.split("*/", 1)[1].lstrip().startswith("// Loaded by tippen-app-tracker.js")
    for forbidden in ("import ", "require(", "document.cookie", ".value", "innerHTML"):
        assert forbidden not in source, forbidden
