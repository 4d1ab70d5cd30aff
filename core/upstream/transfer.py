"""One HTTP request in flight on the driver, and the body callback that fills it.

The body goes through one Python callback per chunk into the transfer's ``bytearray``, with
back-pressure: past ``high_water`` unread bytes the callback pauses the transfer, and ``take()``
resumes it. ``abort()`` removes the handle from the multi handle, which stops the transfer at
once (libcurl closes an HTTP/1.1 connection mid-body, resets an HTTP/2 stream) and never waits.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from curl_cffi import ffi, lib

from core.upstream.handles import Easy, TransferError, last_head

_WRITEFUNC_PAUSE = 0x10000001
_PAUSE_CONT = 0
_E_ABORTED_BY_CALLBACK = 42  # CURLE_ABORTED_BY_CALLBACK


class Driver(Protocol):
    """What a transfer needs of the driver that runs it."""

    loop: asyncio.AbstractEventLoop

    def _finish(self, transfer: Transfer) -> None: ...


class Transfer:
    """One request in flight. The owner awaits ``headers()``, reads ``status``/``head``, then
    the body with ``take()`` (awaiting ``wait()`` while there is none); ``abort()`` at any time."""

    __slots__ = ("_driver", "_easy", "_slist", "_body", "status", "head", "buffer", "done", "error",
                 "headers_ready", "waiter", "_paused", "_high_water")

    def __init__(self, driver: Driver, high_water: int) -> None:
        self._driver = driver
        self._easy: Easy | None = None
        self._slist: Any = ffi.NULL
        self._body: bytes | None = None  # POSTFIELDS points into it: kept alive until the end
        self.status = 0
        self.head = b""  # the final response's header lines, CRLF-separated, without its status line
        self.buffer = bytearray()
        self.done = False
        self.error: TransferError | None = None
        self.headers_ready = False
        self.waiter: asyncio.Future[None] | None = None  # set by the owner, resolved by the driver
        self._paused = False
        self._high_water = high_water

    # -- owner side --------------------------------------------------------------------------------

    async def headers(self) -> None:
        """Until the final response's headers and its first body bytes (or the end) are in;
        raises the transfer's error if it ended without a body."""
        while not self.headers_ready and not self.done:  # done but not ready: aborted
            await self.wait()
        if self.error is not None and not self.buffer:
            raise self.error

    async def finished(self) -> None:
        """Until the transfer ended; raises its error."""
        while not self.done:
            await self.wait()
        if self.error is not None:
            raise self.error

    def wait(self) -> asyncio.Future[None]:
        """A future resolved at the next news (data, headers, the end). Awaiting this instead of
        a coroutine saves a frame per wake-up."""
        waiter = self.waiter = self._driver.loop.create_future()
        return waiter

    def take(self) -> bytes:
        """Everything received and not taken yet (may be empty); resumes a paused transfer."""
        data = bytes(self.buffer)
        self.buffer.clear()
        if self._paused and self._easy is not None:
            self._paused = False
            lib.curl_easy_pause(self._easy.ptr, _PAUSE_CONT)  # may call the write callback at once
        return data

    def abort(self) -> None:
        """Stop the transfer now (idempotent, never blocks) and give the handle back."""
        if not self.done:
            self.done = True
            if self.error is None:
                self.error = TransferError(_E_ABORTED_BY_CALLBACK, "transfer aborted")
            self._driver._finish(self)
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- libcurl side ----------------------------------------------------------------------------

    def _head_in(self, easy: Easy) -> None:
        """The final response's header block is complete (its body starts, or it ended)."""
        self.headers_ready = True
        self.status, self.head = last_head(easy.head.read())

    def _on_done(self, code: int, message: str) -> None:
        if not self.headers_ready and self._easy is not None:
            self._head_in(self._easy)
        self.done = True
        if code:
            self.error = TransferError(code, message)
        self._wake()


def body_writer(easy: Easy) -> Any:
    """The body callback of one handle: append to its transfer's buffer. One frame, no method
    calls on the common path: it runs once per chunk the server sends."""
    buffer_of = ffi.buffer

    def write(ptr: Any, _size: int, nmemb: int, _userdata: Any) -> int:
        transfer = easy.transfer
        if transfer is None or transfer.done:
            return 0  # aborted: anything but ``nmemb`` fails the transfer
        buffer = transfer.buffer
        if len(buffer) >= transfer._high_water:
            transfer._paused = True
            return _WRITEFUNC_PAUSE  # libcurl keeps the chunk and offers it again on resume
        buffer += buffer_of(ptr, nmemb)
        if not transfer.headers_ready:
            transfer._head_in(easy)
        waiter = transfer.waiter
        if waiter is not None:
            transfer.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return nmemb

    return write


def callback_failed(exc_type: Any, exc: Any, tb: Any) -> int:
    """A bug in a callback must fail the transfer, not the process: 0 makes libcurl stop it."""
    return 0
