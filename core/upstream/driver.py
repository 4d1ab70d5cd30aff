"""A lean libcurl driver on the asyncio loop, over curl_cffi's C bindings (``curl_cffi.lib``).

curl_cffi's ``AsyncSession`` re-applies every option (impersonation included) to a reset handle
for each request, builds Request/Response/Headers/cookie objects, calls Python for every header
line, and its ``AsyncCurl`` re-registers the loop's reader on every socket event. Here:

- one multi handle runs every transfer (core/upstream/multi.py); easy handles are configured
  once per :class:`Profile` and pooled (core/upstream/handles.py), and a request sets only what
  changes (URL, header list, body, and timeouts or the proxy when they differ from the handle's
  last request);
- libcurl writes response headers straight into a memory stream (no Python per header line);
  the body goes through one Python callback per chunk into the transfer's ``bytearray``, with
  back-pressure (core/upstream/transfer.py);
- libcurl's sockets sit in an epoll set of the driver's own, which the loop watches as one
  reader: a socket joining or leaving (every request on a kept-alive connection does both) is
  one ``epoll_ctl`` instead of a selector update through asyncio (core/upstream/sockets.py);
- ``Transfer.abort()`` removes the handle from the multi handle, which stops the transfer at once
  and never waits.

Nothing here blocks: libcurl's sockets are non-blocking; name resolution runs in libcurl's
resolver thread.

Per request, ``start`` takes a proxy (connections are matched per proxy and proxy login) and a
:class:`Profile` (handles are pooled per profile, so a per-account fingerprint is another
``Profile``). WebSockets (core/upstream/websocket.py) take a handle of the same pool, configured
for the same profile, but run their handshake in a multi handle of their own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

from curl_cffi import CurlMOpt, ffi, lib
from curl_cffi.curl import DEFAULT_CACERT

from core.upstream.handles import Easy, HandlePool, Limits, Profile, TransferError
from core.upstream.multi import MultiLoop, curl_message
from core.upstream.sockets import SOCKETS as _SOCKETS
from core.upstream.sockets import LoopSockets as _LoopSockets
from core.upstream.transfer import Transfer, body_writer, callback_failed

__all__ = ["CurlDriver", "Limits", "Profile", "Transfer", "TransferError", "_LoopSockets", "_SOCKETS"]

_NO_LIMIT = 1 << 62


class CurlDriver(MultiLoop):
    """One libcurl multi handle on the running event loop; pools easy handles per profile.

    ``max_transfers`` caps transfers in flight (0: no cap; past it, ``slot()`` waits in order);
    ``idle_handles`` easy handles are kept for reuse, and libcurl keeps up to ``idle_connections``
    connections open between transfers.
    """

    def __init__(self, *, proxy: str | None = None, max_transfers: int = 0, idle_handles: int = 64,
                 idle_connections: int = 64, high_water: int = 1 << 20, cacert: str = DEFAULT_CACERT) -> None:
        super().__init__(_SOCKETS)  # looked up here, so tests can swap in the loop's own sockets
        self._proxy = proxy
        self._max_transfers = max_transfers
        self._high_water = high_water
        self.handles = HandlePool(cacert.encode(), idle_handles, body_writer, callback_failed)
        self._queue: deque[asyncio.Future[None]] = deque()  # ``slot()`` callers waiting under max_transfers
        self._slots = 0  # transfers holding a slot (only counted under max_transfers)
        self._closed = False
        self._long[0] = idle_connections
        self._msetopt(CurlMOpt.MAXCONNECTS, self._long)

    @property
    def proxy(self) -> str | None:
        """The proxy used when ``start`` is given none."""
        return self._proxy

    # -- public --------------------------------------------------------------------------------------

    def must_wait(self) -> bool:
        """True when ``start`` needs a ``slot()`` first (``max_transfers`` reached)."""
        return bool(self._max_transfers) and (self._slots >= self._max_transfers or bool(self._queue))

    async def slot(self) -> None:
        """Wait for a free slot under ``max_transfers``; the next ``start`` uses it."""
        waiter = self.loop.create_future()
        self._queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give_slot()  # handed a slot, but leaving: pass it on
            raise
        self._slots -= 1  # ``start`` takes it again

    def start(self, method: str, url: str, headers: Iterable[tuple[str, str | None]], body: bytes | None,
              limits: Limits, profile: Profile, proxy: str | None = None, collect: bool = False) -> Transfer:
        """Begin a transfer and return it; the caller awaits ``Transfer.headers()``. ``proxy``
        overrides the driver's for this request (``http://``, ``https://``, ``socks5h://``, with
        credentials in the URL; ``""``: a direct connection, whatever the driver's or the
        environment's proxy). ``collect``: the whole body is wanted at the end, so the transfer
        is never paused for unread data."""
        if self._closed:
            raise TransferError(0, "transport closed")
        if self._max_transfers:
            self._slots += 1
        transfer = Transfer(self, _NO_LIMIT if collect else self._high_water)
        try:
            easy = self.handles.acquire(profile)
            try:
                self.handles.prepare(easy, transfer, method, url, headers, body, limits,
                                     self._proxy if proxy is None else proxy)
            except BaseException:
                if transfer._slist != ffi.NULL:
                    lib.curl_slist_free_all(transfer._slist)
                self.handles.release(easy, keep=not self._closed)
                raise
        except BaseException:
            self._give_slot()
            raise
        transfer._easy = easy
        easy.transfer = transfer
        code = self._add(easy.ptr, easy)
        if code:
            transfer._on_done(code, f"curl_multi_add_handle failed ({code})")
            self._finish(transfer)
            raise transfer.error  # type: ignore[misc]
        return transfer

    def stats(self) -> dict[str, int]:
        """Handles alive, running and idle; sockets watched; ``slot()`` callers waiting."""
        return {"handles": self.handles.alive, "running": len(self._running), "idle": self.handles.idle(),
                "sockets": len(self._sockets), "waiting": len(self._queue)}

    def close(self) -> None:
        """Abort every transfer and free every handle. The driver is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        queue, self._queue = self._queue, deque()
        for waiter in queue:
            if not waiter.done():
                waiter.set_exception(TransferError(0, "transport closed"))
        for easy in list(self._running.values()):
            if easy.transfer is not None:
                easy.transfer.abort()
        self.handles.close()
        self._close_multi()

    # -- transfers -----------------------------------------------------------------------------------

    def _done(self, owner: Easy, code: int) -> None:
        transfer = owner.transfer
        if transfer is None:
            return
        transfer._on_done(code, curl_message(code, owner.error_buffer))
        self._finish(transfer)

    def _finish(self, transfer: Transfer) -> None:
        """The transfer is over (done, failed or aborted): detach its handle and recycle it."""
        easy = transfer._easy
        if easy is None:
            return
        transfer._easy = None
        self._remove(easy.ptr)  # aborts a running transfer
        if transfer._slist != ffi.NULL:
            lib.curl_slist_free_all(transfer._slist)
            transfer._slist = ffi.NULL
        transfer._body = None
        self.handles.release(easy, keep=not self._closed)
        self._give_slot()

    def _give_slot(self) -> None:
        """A slot is free: it goes to the oldest ``slot()`` caller, else back to the count."""
        if not self._max_transfers:
            return
        self._slots -= 1
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                self._slots += 1  # held for the waiter until its ``start``
                waiter.set_result(None)
                return
