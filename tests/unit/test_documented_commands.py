"""Every ``tippen-rt`` command line in README.md and docs/*.md exists as written.

Lines in fenced code blocks are parsed whole by the real argument parser (so
a missing argument fails too); commands quoted inline in the text must name
existing commands and options.  A documented option that does not exist fails
here, not in front of a user.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from tippen_rt.cli import _build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: The command as the docs run it: from the checkout's venv, or (docs/deploy.md)
#: from the server's, as the service's user.
_PROGRAM = re.compile(r"^(?:sudo -u \S+ )?(?:\.venv/bin/|/opt/tippen-rt/bin/)?tippen-rt(?:\s|$)")
_FENCE = re.compile(r"^```")
_INLINE = re.compile(r"`([^`\n]+)`")
#: Shell variables documented commands use, and a value of the right type.
_VARIABLES = {"$PORT": "8080"}


def documented() -> list[tuple[str, str, bool]]:
    """(where, command line, from a code block) for every documented command."""
    found: list[tuple[str, str, bool]] = []
    for path in DOCS:
        fenced = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.name}:{number}"
            if _FENCE.match(line.strip()):
                fenced = not fenced
                continue
            if fenced:
                text = line.strip()
                if _PROGRAM.match(text):
                    found.append((where, text, True))
                continue
            for span in _INLINE.findall(line):
                if _PROGRAM.match(span.strip()):
                    found.append((where, span.strip(), False))
    return found


def _words(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    start = next(i for i, w in enumerate(words) if w.endswith("tippen-rt")) + 1
    return [_VARIABLES.get(w, w) for w in words[start:]]


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    return None


def test_the_docs_show_commands_at_all() -> None:
    lines = documented()
    assert len(lines) >= 15
    assert any(whole for _, _, whole in lines)


@pytest.mark.parametrize(("where", "line", "whole"), documented())
def test_a_documented_command_exists_as_written(where: str, line: str, whole: bool) -> None:
    parser = _build_parser()
    words = _words(line)
    if whole:
        try:
            parser.parse_args(words)
        except SystemExit as exc:
            raise AssertionError(f"{where}: `{line}` is not a valid command") from exc
        return
    # Inline: the commands named exist, and every option belongs to them.
    current = parser
    for word in words:
        if word.startswith("-"):
            option = word.split("=", 1)[0]
            known = {s for a in current._actions for s in a.option_strings}
            known |= {s for a in parser._actions for s in a.option_strings}
            assert option in known, f"{where}: `{line}`: no option {option}"
            continue
        sub = _subparser(current, word)
        if sub is not None:
            current = sub
