"""The GC policy: survivors of older-generation collections are frozen."""

from __future__ import annotations

import gc

import pytest

from tippen_rt.actors import GcGuard
from tippen_rt.actors import _gc as gc_module


@pytest.fixture(autouse=True)
def unfrozen() -> object:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_survivors_of_a_generation_1_collection_are_frozen() -> None:
    guard = GcGuard()
    guard.install()
    try:
        # Counted before the objects exist: an automatic collection while they
        # are made may freeze some of them already.
        before = gc.get_freeze_count()
        keep = [[i] for i in range(1000)]
        gc.collect(1)
        assert gc.get_freeze_count() >= before + len(keep)
        assert guard.freezes >= 1
    finally:
        guard.uninstall()
    assert guard._after_collection not in gc.callbacks


def test_a_young_collection_freezes_nothing() -> None:
    guard = GcGuard()
    guard.install()
    try:
        gc.collect(0)
        assert guard.freezes == 0
    finally:
        guard.uninstall()


def test_frozen_garbage_is_collected_when_it_outgrows_the_actors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gc_module, "FROZEN_FLOOR", 10)
    monkeypatch.setattr(gc_module, "LEAK_CHECK_EVERY_S", 0.0)
    guard = GcGuard()
    guard._next_leak_check = 0.0
    for _ in range(100):  # cyclic garbage, frozen before it died
        cycle: list[object] = []
        cycle.append(cycle)
    gc.freeze()
    guard.settle()
    assert guard.leak_checks == 1


def tracked_ids() -> set[int]:
    """Ids of the objects in generations 0-2 (not the frozen ones)."""
    return {id(o) for generation in range(3) for o in gc.get_objects(generation)}


def test_actor_steps_collect_what_the_allocation_count_misses() -> None:
    # An actor step replaces an old (frozen) object by a new one: CPython's
    # young count (allocations minus deallocations) stays flat, so only the
    # guard's step count notices that the young list keeps growing.
    olds = [[i] for i in range(1000)]
    gc.freeze()
    guard = GcGuard(collect_every_steps=100)
    count_before = gc.get_count()[0]
    for i in range(99):
        olds[i] = [i]
        guard.stepped()
    assert gc.get_count()[0] - count_before < 50
    assert guard.freezes == 0
    assert id(olds[0]) in tracked_ids()
    olds[99] = [99]
    guard.stepped()
    assert guard.freezes == 1
    assert id(olds[0]) not in tracked_ids()
