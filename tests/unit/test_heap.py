"""The start-up heap is frozen once: later objects stay with the collector."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from core.hosts import heap


@pytest.fixture
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(heap, "_frozen", False)
    yield
    gc.unfreeze()  # give the test process its collector back


def test_startup_heap_is_frozen_once_and_its_garbage_collected_first(fresh_process_state: None) -> None:
    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage  # type: ignore[attr-defined]
    gone = weakref.ref(garbage)
    del garbage
    heap.freeze_startup_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    assert gone() is None  # the cycle was collected, not frozen

    later = [Cycle() for _ in range(100)]
    heap.freeze_startup_heap()
    assert gc.get_freeze_count() == frozen  # a second call pins nothing more
    assert sum(isinstance(o, Cycle) for o in gc.get_objects()) == len(later)
