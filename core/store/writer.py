"""Writes queued from any thread (the event loop included) and committed by one daemon thread.

``put`` never touches the disk. The thread wakes on the first pending item and writes everything
that piled up meanwhile as one batch, so a burst costs one commit. With ``linger``, it first waits
that long for more to pile up (the request log: one commit per quarter second under load, not one
per request). With ``key``, a newer item for the same key is merged into the pending one (the last
state of an account wins, fields merged).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BatchWriter(Generic[T]):
    def __init__(
        self,
        name: str,
        write: Callable[[list[T]], None],
        *,
        key: Callable[[T], Hashable] | None = None,
        merge: Callable[[T, T], T] | None = None,
        batch: int = 1000,
        linger: float = 0.0,
    ) -> None:
        self._write = write
        self._key = key
        self._merge = merge
        self._batch = batch
        self._linger = linger
        self._hurry = False  # a flush or close is waiting: write now, do not linger
        self._serial = itertools.count()
        self._pending: dict[Hashable, T] = {}
        self._writing: dict[Hashable, T] = {}  # taken by the thread, not yet written
        self._stopping = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        with self._cond:
            slot = self._key(item) if self._key else next(self._serial)
            previous = self._pending.pop(slot, None)  # re-inserted last: written in the order last changed
            self._pending[slot] = self._merge(previous, item) if previous is not None and self._merge else item
            if len(self._pending) == 1 or len(self._pending) >= self._batch:
                self._cond.notify_all()  # only what the writer waits for: the first item, or a full batch

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything put so far is written (shutdown and tests; never on the loop)."""
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not self._pending and not self._writing, timeout)
            finally:
                self._hurry = False

    def unwritten(self, key: Hashable) -> list[T]:
        """What was put under ``key`` (with ``key=``) and is not written yet: taken, then pending."""
        with self._cond:
            return [item for item in (self._writing.get(key), self._pending.get(key)) if item is not None]

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                deadline = time.monotonic() + self._linger
                while not (self._stopping or self._hurry or len(self._pending) >= self._batch):
                    if (left := deadline - time.monotonic()) <= 0:
                        break
                    self._cond.wait(left)
                if not self._pending:
                    return  # stopping, nothing left
                slots = list(itertools.islice(self._pending, self._batch))
                self._writing = {slot: self._pending.pop(slot) for slot in slots}
                items = list(self._writing.values())
            try:
                self._write(items)
            except Exception:  # a failed write must never take the proxy down
                logger.exception("%s: write of %d item(s) failed", self._thread.name, len(items))
            with self._cond:
                self._writing = {}
                self._cond.notify_all()
