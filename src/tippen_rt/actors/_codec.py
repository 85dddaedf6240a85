"""UserState <-> compact bytes for snapshots (orjson array, versioned).

Layout version 3: ``[3, taken_at, <every UserState field in declaration order>]``.
Positional, not keyed: a snapshot of 100k users is written every few seconds,
and keys would double its size.  Fields are only ever appended to UserState
(with a default), and a version 3 snapshot with fewer fields than this
release's UserState is read with the missing trailing fields at their
defaults: a release that adds a field reads the snapshots of the one before.
Any other change of the layout needs a new version, and the old one must
still be read (a restart onto a new release loses nobody).

Version 2 had exactly the fields up to ``observed_from`` (no display name).
Version 1 had the first 28 fields only (no presence) and open episodes as
``[trigger, since]`` pairs, without the reason.
"""

from __future__ import annotations

from typing import Any

import orjson

from ._state import UserState
from ._triggers import Trigger

VERSION = 3
_FIELDS = UserState._fields
_TUPLES = ("recent_interactions", "recent_errors")
#: Version 1's and 2's fields are the first ones of version 3.
_V1_FIELD_COUNT = _FIELDS.index("clock_offset_ms") + 1
_V2_FIELD_COUNT = _FIELDS.index("observed_from") + 1


class SnapshotError(ValueError):
    """A snapshot that cannot be read back (corrupt, or from another version)."""


def encode_state(state: UserState, taken_at: float) -> bytes:
    """The snapshot bytes of ``state`` taken at server time ``taken_at``."""
    return orjson.dumps([VERSION, taken_at, *[getattr(state, name) for name in _FIELDS]])


_ACTIVE, _LAST_FIRED = 2 + _FIELDS.index("active"), 2 + _FIELDS.index("last_fired")
_TUPLE_INDEXES = tuple(2 + _FIELDS.index(name) for name in _TUPLES)
_TENANT, _USER = 2 + _FIELDS.index("tenant_id"), 2 + _FIELDS.index("user_id")


_OBSERVED_FROM = 2 + _FIELDS.index("observed_from")
#: Every field's default, for the fields a snapshot was written without.
_DEFAULTS = [UserState._field_defaults.get(name) for name in _FIELDS]


def decode_state(blob: bytes, *, observed_from: float | None = None) -> tuple[UserState, float]:
    """``(state, taken_at)`` from :func:`encode_state` output; raise SnapshotError.

    ``observed_from``, if given, replaces the stored one: recovery restores
    100k users watched from the restart on, and a copy per user to change one
    field costs more than the decoding itself.
    """
    try:
        doc = orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"not JSON: {exc}") from None
    if not isinstance(doc, list) or len(doc) < 2 or doc[0] not in (1, 2, VERSION):
        raise SnapshotError("unknown snapshot version")
    version, count = doc[0], len(doc) - 2
    if version == VERSION:
        # Fields appended since it was written take their defaults.
        fits = _V2_FIELD_COUNT <= count <= len(_FIELDS)
    else:
        fits = count == (_V2_FIELD_COUNT if version == 2 else _V1_FIELD_COUNT)
    if not fits:
        raise SnapshotError("snapshot has the wrong number of fields")
    if not isinstance(doc[_TENANT], int) or not isinstance(doc[_USER], str):
        raise SnapshotError("snapshot key fields have the wrong type")
    try:
        # Positional and in place: recovery decodes 100k of these.
        if version == 1:
            _upgrade_v1(doc)
        else:
            doc[_ACTIVE] = tuple((Trigger(t), float(at), str(why)) for t, at, why in doc[_ACTIVE])
        doc[_LAST_FIRED] = tuple((Trigger(t), float(at)) for t, at in doc[_LAST_FIRED])
        for i in _TUPLE_INDEXES:
            doc[i] = tuple(doc[i])
        if len(doc) - 2 < len(_FIELDS):
            doc.extend(_DEFAULTS[len(doc) - 2 :])
        if observed_from is not None:
            doc[_OBSERVED_FROM] = observed_from
        return UserState._make(doc[2:]), float(doc[1])
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"bad snapshot field: {exc}") from None


def _upgrade_v1(doc: list[Any]) -> None:
    """A version 1 snapshot, in place, as version 2 (presence from what it knew)."""
    doc[_ACTIVE] = tuple((Trigger(t), float(at), Trigger(t).in_words) for t, at in doc[_ACTIVE])
    state = UserState(*doc[2:])  # the new fields at their defaults
    last_input = state.last_interaction_at
    doc.extend(
        [
            last_input,
            last_input if last_input is not None else state.session_started_at,
            None,
            "active",
            state.last_presence_at,
            0.0,
        ]
    )
