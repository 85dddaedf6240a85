"""A set of keys that changed, and a way to wait until there are some."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

import trio

K = TypeVar("K", bound=Hashable)


class DirtySet(Generic[K]):
    """Keys marked since the last :meth:`take`; one consumer waits on it."""

    def __init__(self) -> None:
        self._keys: set[K] = set()
        self._nonempty = trio.Event()

    def add(self, key: K) -> None:
        """Mark ``key`` changed."""
        self._keys.add(key)
        if not self._nonempty.is_set():
            self._nonempty.set()

    def poke(self) -> None:
        """Wake the consumer without marking a key (it has work of its own)."""
        if not self._nonempty.is_set():
            self._nonempty.set()

    async def wait(self) -> None:
        """Return once at least one key is marked."""
        await self._nonempty.wait()

    def take(self) -> set[K]:
        """Every marked key; the set is empty afterwards."""
        keys, self._keys = self._keys, set()
        self._nonempty = trio.Event()
        return keys

    def __len__(self) -> int:
        return len(self._keys)
