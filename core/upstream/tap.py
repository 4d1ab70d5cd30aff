"""Watching upstream calls from outside the pipeline.

A host may attach a ``Tap`` to a job (mitmweb shows each call as an "upstream leg" flow, a
recording writes it to a flow file). While the job runs, the transport reports every call it makes
on the job's behalf: the request exactly as sent, then the response as received. The pipeline knows
nothing of it; a ``ContextVar`` carries the tap into the tasks the job starts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Protocol

logger = logging.getLogger(__name__)


class Leg(Protocol):
    """One upstream call as it happens. ``end`` may be called more than once; the first wins."""

    def response(self, status: int, headers: Mapping[str, str]) -> None: ...

    def data(self, chunk: bytes) -> None: ...

    def end(self, error: str | None = None) -> None: ...


class Tap(Protocol):
    def open(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Leg | None: ...


_current: ContextVar[Tap | None] = ContextVar("codex_upstream_tap", default=None)


@contextlib.contextmanager
def tapping(tap: Tap | None) -> Iterator[None]:
    """Report the upstream calls made inside this block (and the tasks it starts) to ``tap``."""
    if tap is None and _current.get() is None:
        yield  # nobody watching (the common case): no context change
        return
    token = _current.set(tap)
    try:
        yield
    finally:
        _current.reset(token)


def open_leg(method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Leg | None:
    """Called by the transport before each upstream call. A broken tap never breaks the call."""
    tap = _current.get()
    if tap is None:
        return None
    try:
        return tap.open(method, url, headers, body)
    except Exception:
        logger.exception("upstream tap failed; the call goes on unwatched")
        return None
