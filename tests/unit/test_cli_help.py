"""Every option in every ``--help`` says its default, and ``tippen-rt --help``
says what the exit status means."""

from __future__ import annotations

import argparse
import re

import pytest

from tippen_rt.cli import _build_parser, _subcommand_parsers

#: Flags whose absence needs no words: asking for help or the version, another
#: output format, skipping a confirmation.  Keep it short; anything else says
#: "(default ...)" in its help.
NO_DEFAULT_NEEDED = frozenset({"--help", "--version", "--json", "--markdown", "--yes"})

_DEFAULT = re.compile(r"\bdefaults?\b", re.IGNORECASE)


def _options() -> list[tuple[str, argparse.Action]]:
    parser = _build_parser()
    found = []
    for sub in [parser, *_subcommand_parsers(parser)]:
        for action in sub._actions:
            if not action.option_strings or action.required or action.help == argparse.SUPPRESS:
                continue  # positionals and required options have no default
            found.append((f"{sub.prog} {'/'.join(action.option_strings)}", action))
    return found


def test_there_are_options_to_check() -> None:
    names = [name for name, _ in _options()]
    assert any(n.endswith("rotate-key --overlap-hours") for n in names)
    assert any(n.endswith("remove --yes") for n in names)


@pytest.mark.parametrize(("where", "action"), _options(), ids=[n for n, _ in _options()])
def test_every_option_says_its_default(where: str, action: argparse.Action) -> None:
    if NO_DEFAULT_NEEDED & set(action.option_strings):
        return
    assert action.help and _DEFAULT.search(action.help), (
        f"`{where}` does not say its default in its help: {action.help!r}"
    )


def test_the_exemptions_are_all_in_use() -> None:
    used = {s for _, action in _options() for s in action.option_strings}
    assert used >= NO_DEFAULT_NEEDED


def test_help_says_what_the_exit_status_means(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        _build_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 done; 1 failed" in text
    assert "2 a usage or input mistake" in text
