"""Git revisions of the service for benchmarks: resolve one, export its ``src/``.

``python -m bench --at REV`` and the before/after benchmarks (``presence``) run
the service as it was at a revision by exporting that revision's ``src/`` with
``git archive`` into a temp directory and putting it first on ``PYTHONPATH``
(``recovery`` runs both trees' recoveries on the same prepared data).
Read-only for the repository: no checkout, no stash.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from ._report import REPO_DIR, SRC_REV_ENV


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=False, timeout=30
    )


def resolve_rev(rev: str) -> str | None:
    """The full commit id of ``rev``, or None if it names no commit."""
    return _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").stdout.strip() or None


def describe_rev(sha: str) -> str:
    """``abc123def456 subject line`` for reports."""
    subject = _git("log", "-1", "--format=%s", sha).stdout.strip()
    return f"{sha[:12]} {subject[:72]}".rstrip()


def src_dirty() -> bool:
    """True if ``src/`` has uncommitted changes (the working tree is not HEAD's)."""
    return bool(_git("status", "--porcelain", "--", "src").stdout.strip())


def export_src(sha: str, dest: Path) -> Path:
    """Extract ``src/`` of commit ``sha`` under ``dest``; the directory to put on PYTHONPATH."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", sha, "src"],
        cwd=REPO_DIR,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def baseline_rev(choice: str) -> tuple[str | None, str]:
    """The commit a before/after benchmark runs as "before" (``--baseline``), or
    None, and how it was chosen.

    ``auto``: the commit before the ``--at`` revision; else HEAD if ``src/`` has
    uncommitted changes, else HEAD~1.  ``none`` skips the baseline.
    """
    choice = choice.strip()
    if choice.lower() in ("none", "off", ""):
        return None, "skipped (--baseline none)"
    if choice != "auto":
        sha = resolve_rev(choice)
        if sha is None:
            raise ValueError(f"--baseline {choice}: not a git revision")
        return sha, f"--baseline {choice}"
    pinned = os.environ.get(SRC_REV_ENV)
    if pinned:
        return resolve_rev(f"{pinned}~1"), "the commit before the --at revision"
    if src_dirty():
        return resolve_rev("HEAD"), "HEAD (src/ has uncommitted changes)"
    return resolve_rev("HEAD~1"), "HEAD~1 (src/ is HEAD's)"
