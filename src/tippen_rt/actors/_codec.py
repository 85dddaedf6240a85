"""UserState <-> compact bytes for snapshots (orjson array, versioned).

Layout version 1: ``[1, taken_at, <every UserState field in declaration order>]``.
Positional, not keyed: a snapshot of 100k users is written every few seconds,
and keys would double its size.  Change the layout only with a new version.
"""

from __future__ import annotations

import dataclasses

import orjson

from ._state import UserState
from ._triggers import Trigger

VERSION = 1
_FIELDS = tuple(f.name for f in dataclasses.fields(UserState))
_PAIRS = ("active", "last_fired")
_TUPLES = ("recent_interactions", "recent_errors")


class SnapshotError(ValueError):
    """A snapshot that cannot be read back (corrupt, or from another version)."""


def encode_state(state: UserState, taken_at: float) -> bytes:
    """The snapshot bytes of ``state`` taken at server time ``taken_at``."""
    return orjson.dumps([VERSION, taken_at, *[getattr(state, name) for name in _FIELDS]])


_PAIR_INDEXES = tuple(2 + _FIELDS.index(name) for name in _PAIRS)
_TUPLE_INDEXES = tuple(2 + _FIELDS.index(name) for name in _TUPLES)
_TENANT, _USER = 2 + _FIELDS.index("tenant_id"), 2 + _FIELDS.index("user_id")


def decode_state(blob: bytes) -> tuple[UserState, float]:
    """``(state, taken_at)`` from :func:`encode_state` output; raise SnapshotError."""
    try:
        doc = orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"not JSON: {exc}") from None
    if not isinstance(doc, list) or len(doc) < 2 or doc[0] != VERSION:
        raise SnapshotError("unknown snapshot version")
    if len(doc) != 2 + len(_FIELDS):
        raise SnapshotError("snapshot has the wrong number of fields")
    if not isinstance(doc[_TENANT], int) or not isinstance(doc[_USER], str):
        raise SnapshotError("snapshot key fields have the wrong type")
    try:
        # Positional and in place: recovery decodes 100k of these.
        for i in _PAIR_INDEXES:
            doc[i] = tuple((Trigger(t), float(at)) for t, at in doc[i])
        for i in _TUPLE_INDEXES:
            doc[i] = tuple(doc[i])
        return UserState(*doc[2:]), float(doc[1])
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"bad snapshot field: {exc}") from None
