"""Served scripts minified: what every page of every tenant downloads, as small
as it can be without changing what it does.

The commented source in ``tippen_rt/tracker/`` is for people; pages get it
through calmjs.parse's ES5 minifier (a parser, not a regex: comments and
whitespace gone, local names shortened; global names and property names, the
script's public API, kept).  The ``/*!`` licence line is kept in front.  A
script that does not parse raises calmjs's ``ECMASyntaxError`` rather than
being served broken; the tests parse and run what is served.
"""

from __future__ import annotations

__all__ = ["minify_script"]


def minify_script(source: str) -> str:
    """``source`` minified, its first line kept if it is a ``/*!`` comment."""
    # Imported here: the parser tables load in ~0.1 s, which only the first
    # request for a script should pay, never a CLI command.
    from calmjs.parse import es5
    from calmjs.parse.unparsers.es5 import minify_print

    first = source.lstrip().split("\n", 1)[0]
    header = first + "\n" if first.startswith("/*!") and first.endswith("*/") else ""
    body = minify_print(es5(source), obfuscate=True, obfuscate_globals=False)
    return f"{header}{body}\n"
