"""Served scripts without what only people read: comments, indentation, the
spaces between tokens that need none.  Pure.

Every page of every tenant downloads the tracker, so its bytes count; its
source stays commented and readable.  This is not a minifier: it renames
nothing and keeps every line break (so automatic semicolon insertion sees
exactly the lines it saw before), and only drops a space where the tokens on
either side of it cannot run together.  It understands what the scripts it
serves use: strings, regular expression literals (told from a division by
the token before them), ``//`` and one-line ``/* */`` comments (a ``/*!``
comment is kept: the licence line).  Anything it does not understand, a
template literal or a string or comment that runs past its line, raises
ValueError instead of being served broken.
"""

from __future__ import annotations

import itertools
import re

__all__ = ["compact_script", "js_tokens"]

_WORD = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff]")
#: Tokens after which ``/`` starts a regular expression rather than dividing.
_BEFORE_REGEX_WORDS = frozenset(
    {"return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case"}
    | {"do", "else"}
)
_WORDS = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff.]+")
#: Punctuators, longest first (``x++`` is one token, never ``x+ +``).
_PUNCTUATOR = re.compile(
    r">>>=|\.\.\.|===|!==|\*\*=|<<=|>>=|>>>|\?\?=|&&=|\|\|="
    r"|=>|==|!=|<=|>=|&&|\|\||\?\?|\?\.|\+\+|--|\*\*|<<|>>|[-+*%&|^]=|[^\s]"
)


def _regex_end(line: str, start: int) -> int:
    """The index just past the regular expression literal starting at ``start``."""
    i, in_class = start + 1, False
    while i < len(line):
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            i += 1
            while i < len(line) and _WORD.match(line[i]):
                i += 1  # flags
            return i
        i += 1
    raise ValueError(f"unterminated regular expression: {line[start : start + 40]!r}")


def _string_end(line: str, start: int) -> int:
    quote, i = line[start], start + 1
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == quote:
            return i + 1
        i += 1
    raise ValueError(f"string runs past its line: {line[start : start + 40]!r}")


def js_tokens(source: str) -> list[list[str]]:
    """The tokens of each line of ``source`` that has any: comments dropped
    (but a ``/*!`` one), whitespace gone."""
    out: list[list[str]] = []
    previous = ""  # the last significant token, across lines
    for line in source.splitlines():
        tokens: list[str] = []
        i = 0
        while i < len(line):
            c = line[i]
            if c in " \t":
                i += 1
                continue
            if c == "`":
                raise ValueError("template literals are not supported")
            if line.startswith("//", i):
                break
            if line.startswith("/*", i):
                end = line.find("*/", i + 2)
                if end < 0:
                    raise ValueError("a /* comment */ must end on its line")
                if line.startswith("/*!", i):
                    tokens.append(line[i : end + 2])
                i = end + 2
                continue
            if c in "'\"":
                end = _string_end(line, i)
            elif c == "/" and (
                not previous
                or (not _WORD.match(previous[-1]) and previous[-1] not in ")]}")
                or previous in _BEFORE_REGEX_WORDS
            ):
                end = _regex_end(line, i)
            elif _WORD.match(c) or (c == "." and i + 1 < len(line) and line[i + 1].isdigit()):
                match = _WORDS.match(line, i)
                assert match is not None
                end = match.end()
            else:
                match = _PUNCTUATOR.match(line, i)
                assert match is not None
                end = match.end()
            tokens.append(line[i:end])
            previous = tokens[-1]
            i = end
        if tokens:
            out.append(tokens)
    return out


def _needs_space(left: str, right: str) -> bool:
    """Whether ``left right`` would read differently without the space."""
    if _WORD.match(left[-1]) and (_WORD.match(right[0]) or right[0] == "."):
        return True  # ``var x``, ``in ls``, ``1 .5``
    if left[-1] + right[0] in ("//", "/*"):
        return True  # a division then a regular expression
    if not _WORD.match(left[-1]) and not _WORD.match(right[0]):
        merged = _PUNCTUATOR.match(left + right)
        if merged is not None and len(merged.group()) > len(left):
            return True  # ``a + +b``, ``a - -b``: they would run together
    return False


def _opens_html_comment(text: str, right: str) -> bool:
    """``<!--`` and ``-->`` start HTML-like comments in a script: never make one."""
    tail, head = text[-3:], right[:3]
    return any(m in tail + head and m not in tail and m not in head for m in ("<!--", "-->"))


def compact_script(source: str) -> str:
    """``source`` as served: each line's tokens, spaced only where they must be,
    one line per line of code (blank and comment-only lines dropped)."""
    lines = []
    for tokens in js_tokens(source):
        text = tokens[0]
        for left, right in itertools.pairwise(tokens):
            space = _needs_space(left, right) or _opens_html_comment(text, right)
            text += (" " if space else "") + right
        lines.append(text)
    return "\n".join(lines) + "\n"
