"""The tracker's size budget: under 4 KiB gzipped, reported on every run."""

from __future__ import annotations

import gzip

import pytest

from tippen_rt.http._compact_js import compact_script, js_tokens
from tippen_rt.http._tracker_assets import tracker_dir

#: The script as the package holds it (src/tippen_rt/tracker/ in the repository).
TRACKER = tracker_dir() / "tippen-app-tracker.js"
#: The second script: loaded only while a user is flagged (call invitations).
INVITE = tracker_dir() / "tippen-invite.js"
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


def test_compacting_keeps_every_token_and_line_of_code() -> None:
    source = TRACKER.read_text()
    assert "`" not in source  # no template literal could span lines
    served = compact_script(source)
    # The same tokens on the same lines: only comments and spaces are gone.
    assert js_tokens(served) == js_tokens(source)
    code = [line.strip() for line in source.splitlines()]
    code = [line for line in code if line and not line.startswith("//")]
    assert len(served.splitlines()) == len(code)
    assert served.startswith("/*! tippen-rt tracker")
    assert "  " not in served and "function (" not in served


@pytest.mark.parametrize(
    ("source", "served"),
    [
        ("var a = b / 2 / c;", "var a=b/2/c;"),
        ("x = y.replace(/ \\/ [/]/g, ' ');  // end", "x=y.replace(/ \\/ [/]/g,' ');"),
        ("return /a b/.test(s);", "return/a b/.test(s);"),
        ("a = b + +c - -d;", "a=b+ +c- -d;"),
        ("if (x) y = 'it''s'; /* gone */ z = \"//\";", "if(x)y='it''s';z=\"//\";"),
        (
            "n = 1e-9 + .5;\n\n  // a comment line\nm = i-- > 0 && j++ === k;",
            "n=1e-9+.5;\nm=i-- >0&&j++===k;",
        ),
        ("a = b < !--c;", "a=b<! --c;"),
        ("/*! keep */ var typeof_ = typeof x;", "/*! keep */var typeof_=typeof x;"),
    ],
)
def test_compacting_drops_only_spaces_tokens_do_not_need(source: str, served: str) -> None:
    assert compact_script(source) == served + "\n"
    assert js_tokens(compact_script(source)) == js_tokens(source)


@pytest.mark.parametrize(
    "source", ["var s = `template`;", "var s = 'open;", "/* runs on", "x = /open;"]
)
def test_what_compacting_does_not_understand_is_refused(source: str) -> None:
    with pytest.raises(ValueError):
        compact_script(source)


def test_tracker_is_one_iife_without_dependencies() -> None:
    source = TRACKER.read_text()
    code = source.split("*/", 1)[1].strip()
    assert code.startswith("(function (w, d) {")
    assert code.endswith("})(window, document);")
    for forbidden in ("import ", "require(", "document.cookie", ".value"):
        assert forbidden not in source, forbidden


def test_the_invitation_script_is_small_self_contained_and_compacts_cleanly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = INVITE.read_text()
    served = compact_script(source)
    assert js_tokens(served) == js_tokens(source)
    gzipped = len(gzip.compress(served.encode(), compresslevel=9, mtime=0))
    with capsys.disabled():
        print(f"\n[tracker] {INVITE.name}: served {len(served)} bytes, {gzipped} gzipped")
    assert gzipped < 4096
    assert source.split("*/", 1)[1].lstrip().startswith("// Loaded by tippen-app-tracker.js")
    for forbidden in ("import ", "require(", "document.cookie", ".value", "innerHTML"):
        assert forbidden not in source, forbidden
