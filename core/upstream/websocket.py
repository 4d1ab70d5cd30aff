"""A WebSocket client on libcurl (``CURLOPT_CONNECT_ONLY=2``), run by the asyncio loop.

The handshake is an ordinary transfer on a handle of the driver's pool (same profile, so the same
TLS fingerprint and proxy rules as the HTTP calls), but in a multi handle of its own, which the
socket keeps for its whole life: a connect-only connection belongs to the connection pool of the
multi handle that made it, and libcurl closes an idle pooled connection that has unread input or
has outlived ``MAXAGE_CONN`` whenever another transfer of that multi looks for a connection — in
the shared multi handle, any HTTP call could close a socket between two turns.

After the 101, the socket is the loop's reader: each readiness reads every complete frame
(``curl_ws_recv`` until EAGAIN; libcurl answers pings itself) into a queue of text messages the
owner takes with ``next_message``/``wait``. Past ``high_water`` unread bytes the socket stops
reading until the owner catches up (TCP back-pressure, as for HTTP bodies). Sending writes the
frame with ``curl_ws_send``, waiting for writability when the kernel buffer is full.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from curl_cffi import CurlInfo, CurlOpt, ffi, lib

from core.upstream.handles import Easy, HandlePool, Limits, Profile, TransferError, last_head
from core.upstream.multi import MultiLoop, curl_message
from core.upstream.sockets import LoopSockets

_CONNECT_ONLY = int(CurlOpt.CONNECT_ONLY)
_ACTIVESOCKET = int(CurlInfo.ACTIVESOCKET)
_E_AGAIN = 81  # CURLE_AGAIN
_E_HTTP_RETURNED_ERROR = 22  # a refused upgrade
TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 4, 8, 16, 64
_RECV_BUFFER = 64 * 1024
_local = threading.local()


def _recv_buffer() -> Any:
    """The buffer ``curl_ws_recv`` reads into: one per thread (a loop's sockets read one at a time
    and copy out at once), not 64 KiB held by every open socket."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = ffi.new("char[]", _RECV_BUFFER)
    return buffer


class WebSocketRefused(TransferError):
    """The server answered the upgrade with something other than 101 (``status``, ``head``)."""

    def __init__(self, status: int, head: bytes, message: str) -> None:
        super().__init__(_E_HTTP_RETURNED_ERROR, message)
        self.status = status
        self.head = head


class _Upgrade(MultiLoop):
    """The socket's own multi handle: runs the handshake, then only holds the connection."""

    def __init__(self) -> None:
        super().__init__(LoopSockets)  # a few events per socket: the loop's own readers will do
        self.finished: asyncio.Future[int] = self.loop.create_future()

    def _done(self, owner: Easy, code: int) -> None:
        if not self.finished.done():
            self.finished.set_result(code)

    def start(self, easy: Easy) -> None:
        code = self._add(easy.ptr, easy)
        if code:
            raise TransferError(code, f"curl_multi_add_handle failed ({code})")

    def stop(self, easy: Easy) -> None:
        self._remove(easy.ptr)  # closes the connect-only connection
        self._close_multi()

    def forget(self, fd: int) -> None:
        """The socket is the owner's now: no watcher of the handshake's may stay on it."""
        self._sockets.remove(fd)


class UpstreamSocket:
    """One open WebSocket: the upgrade's ``status``/``head``, text messages in, frames out."""

    __slots__ = ("loop", "head", "status", "opened_at", "last_active", "closed", "close_reason", "_easy",
                 "_handles", "_upgrade", "_fd", "_messages", "_partial", "_pending", "_high_water", "_reading",
                 "_waiter", "_got", "_meta", "_sent", "_slist", "_body")

    def __init__(self, loop: asyncio.AbstractEventLoop, handles: HandlePool, easy: Easy, upgrade: _Upgrade,
                 high_water: int) -> None:
        self.loop = loop
        self.status = 0
        self.head = b""  # the 101 answer's header lines
        self.opened_at = time.monotonic()
        self.last_active = self.opened_at  # last frame in or out
        self.closed = False
        self.close_reason = ""
        self._easy = easy
        self._handles = handles
        self._upgrade = upgrade
        self._fd = -1
        self._messages: deque[bytes] = deque()
        self._partial: list[bytes] = []  # the fragments of a message still arriving
        self._pending = 0  # bytes queued in ``_messages``
        self._high_water = high_water
        self._reading = False
        self._waiter: asyncio.Future[None] | None = None
        self._got = ffi.new("size_t *")
        self._meta = ffi.new("struct curl_ws_frame **")
        self._sent = ffi.new("size_t *")
        self._slist: Any = ffi.NULL  # the handshake's header list, freed once it is over
        self._body: bytes | None = None

    # -- opening -------------------------------------------------------------------------------------

    @classmethod
    async def open(cls, handles: HandlePool, url: str, headers: Iterable[tuple[str, str | None]], limits: Limits,
                   profile: Profile, proxy: str | None = None, high_water: int = 1 << 20) -> UpstreamSocket:
        """Connect and upgrade (``url``: ws:// or wss://). Raises :class:`WebSocketRefused` for a
        non-101 answer, :class:`TransferError` when no connection could be made."""
        easy = handles.new(profile)  # never pooled again: the connection lives with this handle
        upgrade = _Upgrade()
        sock = cls(upgrade.loop, handles, easy, upgrade, high_water)
        try:
            handles.prepare(easy, sock, "GET", url, headers, None, limits, proxy)
            handles.set_long(easy, _CONNECT_ONLY, 2)
            upgrade.start(easy)
            code = await upgrade.finished
            sock._free_request()
            sock.status, sock.head = last_head(easy.head.read())
            if code == _E_HTTP_RETURNED_ERROR or (not code and sock.status != 101):
                raise WebSocketRefused(sock.status, sock.head, f"WebSocket upgrade refused: HTTP {sock.status}")
            if code:
                raise TransferError(code, curl_message(code, easy.error_buffer))
            sock._attach()
        except BaseException:
            sock._release()
            raise
        return sock

    def _attach(self) -> None:
        fd = ffi.new("uintptr_t *")
        code = lib._curl_easy_getinfo_socket(self._easy.ptr, _ACTIVESOCKET, fd)
        if code or fd[0] in (0, (1 << 64) - 1):
            raise TransferError(code, "the upgraded connection has no socket")
        self._fd = int(fd[0])
        self._upgrade.forget(self._fd)
        self._reading = True
        self.loop.add_reader(self._fd, self._readable)
        self.loop.call_soon(self._readable)  # frames that came with the 101 are already buffered

    def _free_request(self) -> None:
        if self._slist != ffi.NULL:
            lib.curl_slist_free_all(self._slist)
            self._slist = ffi.NULL

    # -- receiving -----------------------------------------------------------------------------------

    def next_message(self) -> bytes | None:
        """The oldest text message not taken yet, or None (then ``wait()``, unless ``closed``)."""
        if not self._messages:
            return None
        message = self._messages.popleft()
        self._pending -= len(message)
        if not self._reading and not self.closed and self._pending < self._high_water:
            self._reading = True
            self.loop.add_reader(self._fd, self._readable)
            self.loop.call_soon(self._readable)
        return message

    def discard_messages(self) -> int:
        """Drop whatever arrived while nobody was listening; returns how many messages."""
        count = len(self._messages)
        while self.next_message() is not None:
            pass
        return count

    def wait(self) -> asyncio.Future[None]:
        """Resolved at the next message or at the close."""
        waiter = self._waiter = self.loop.create_future()
        if self.closed or self._messages:
            waiter.set_result(None)
        return waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _readable(self) -> None:
        if self.closed or not self._reading:
            return
        recv, ptr, buffer, got, meta = lib.curl_ws_recv, self._easy.ptr, _recv_buffer(), self._got, self._meta
        woke = False
        while True:
            code = recv(ptr, buffer, _RECV_BUFFER, got, meta)
            if code:
                if code != _E_AGAIN:
                    self._lost(curl_message(code, self._easy.error_buffer) if code != 52 else "closed by the server")
                    return
                break
            frame = meta[0]
            flags = frame.flags
            if flags & (TEXT | BINARY | CONT):
                if flags & BINARY:
                    self._lost("the server sent a binary frame")
                    return
                chunk = ffi.buffer(buffer, got[0])[:]
                if frame.bytesleft or flags & CONT:
                    self._partial.append(chunk)
                    continue
                if self._partial:
                    self._partial.append(chunk)
                    chunk = b"".join(self._partial)
                    self._partial = []
                self._messages.append(chunk)
                self._pending += len(chunk)
                woke = True
                if self._pending >= self._high_water:
                    self._reading = False  # resumed by next_message
                    self.loop.remove_reader(self._fd)
                    break
            elif flags & CLOSE:
                self._lost("closed by the server")
                return
        self.last_active = time.monotonic()
        if woke:
            self._wake()

    def _lost(self, reason: str) -> None:
        """The connection is gone (closed by the server, reset, protocol error)."""
        if not self.closed:
            self.close_reason = reason
            self._shut()
        self._wake()

    # -- sending -------------------------------------------------------------------------------------

    async def send(self, payload: bytes, flags: int = TEXT) -> None:
        """One whole message (a text frame by default); raises TransferError if the socket died."""
        if self.closed:
            raise TransferError(55, f"websocket closed: {self.close_reason}")
        send, ptr, sent = lib.curl_ws_send, self._easy.ptr, self._sent
        data = ffi.from_buffer(payload)
        size, offset = len(payload), 0
        while True:
            code = send(ptr, data + offset, size - offset, sent, 0, flags)
            offset += sent[0]
            if code == 0 and offset >= size:
                self.last_active = time.monotonic()
                return
            if code and code != _E_AGAIN:
                message = curl_message(code, self._easy.error_buffer)
                self._lost(message)
                raise TransferError(code, f"websocket send failed: {message}")
            if code == _E_AGAIN:
                await self._writable()
                if self.closed:
                    raise TransferError(55, f"websocket closed: {self.close_reason}")

    def _writable(self) -> asyncio.Future[None]:
        future = self.loop.create_future()

        def ready() -> None:
            self.loop.remove_writer(self._fd)
            if not future.done():
                future.set_result(None)

        self.loop.add_writer(self._fd, ready)
        return future

    def ping(self) -> bool:
        """Send a ping now if the socket can take it at once; False when it could not."""
        if self.closed:
            return False
        code = lib.curl_ws_send(self._easy.ptr, ffi.NULL, 0, self._sent, 0, PING)
        return code == 0

    # -- closing -------------------------------------------------------------------------------------

    def close(self, reason: str = "closed") -> None:
        """Say goodbye if the kernel takes it at once, then drop the connection (never waits).
        Only on the socket's loop: libcurl's handles are not to be touched from two threads."""
        if self.closed:
            return
        if asyncio.get_running_loop() is not self.loop:  # raises too in a thread without a loop
            raise RuntimeError("an upstream WebSocket is closed on another loop than its own")
        self.close_reason = reason
        lib.curl_ws_send(self._easy.ptr, b"\x03\xe8", 2, self._sent, 0, CLOSE)  # 1000: normal closure
        self._shut()
        self._wake()

    def _shut(self) -> None:
        self.closed = True
        self._messages.clear()
        self._partial = []
        self._pending = 0
        if self._fd >= 0:
            if self._reading:
                self.loop.remove_reader(self._fd)
            self.loop.remove_writer(self._fd)
            self._reading = False
        self._release()

    def _release(self) -> None:
        self._free_request()
        easy, self._easy = self._easy, None  # type: ignore[assignment]
        if easy is not None:
            self._upgrade.stop(easy)
            self._handles.discard(easy)
        self.closed = True
