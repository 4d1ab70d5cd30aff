"""A lean libcurl driver on the asyncio loop, over curl_cffi's C bindings (``curl_cffi.lib``).

curl_cffi's ``AsyncSession`` re-applies every option (impersonation included) to a reset handle
for each request, builds Request/Response/Headers/cookie objects, and its ``AsyncCurl`` re-arms
the loop's reader for every socket event. Here one multi handle runs every transfer; easy
handles are configured once per :class:`Profile` and pooled, and a request sets only what changes
(URL, header list, body, timeouts when they differ). Bodies land in one ``bytearray`` per transfer
through a write callback, with back-pressure (the callback pauses the transfer once
``high_water`` bytes wait unread); ``abort()`` removes the handle from the multi handle, which
stops the transfer at once (libcurl closes an HTTP/1.1 connection, resets an HTTP/2 stream).

Nothing here blocks: libcurl's sockets are non-blocking and watched by the loop; name resolution
runs in libcurl's resolver thread.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from curl_cffi import CurlHttpVersion, CurlMOpt, CurlOpt, ffi, lib
from curl_cffi.curl import DEFAULT_CACERT
from curl_cffi.requests.impersonate import resolve_latest_browser_type

# Option numbers as plain ints: enum attribute lookups are measurable on the hot path.
_URL = int(CurlOpt.URL)
_HTTPHEADER = int(CurlOpt.HTTPHEADER)
_POSTFIELDS = int(CurlOpt.POSTFIELDS)
_POSTFIELDSIZE_LARGE = int(CurlOpt.POSTFIELDSIZE_LARGE)
_HTTPGET = int(CurlOpt.HTTPGET)
_NOBODY = int(CurlOpt.NOBODY)
_CUSTOMREQUEST = int(CurlOpt.CUSTOMREQUEST)
_CONNECTTIMEOUT_MS = int(CurlOpt.CONNECTTIMEOUT_MS)
_TIMEOUT_MS = int(CurlOpt.TIMEOUT_MS)
_LOW_SPEED_LIMIT = int(CurlOpt.LOW_SPEED_LIMIT)
_LOW_SPEED_TIME = int(CurlOpt.LOW_SPEED_TIME)
_PROXY = int(CurlOpt.PROXY)
_HTTPPROXYTUNNEL = int(CurlOpt.HTTPPROXYTUNNEL)

_POLL_IN, _POLL_OUT, _POLL_REMOVE = 1, 2, 4
_CSELECT_IN, _CSELECT_OUT = 1, 2
_SOCKET_TIMEOUT = -1
_MSG_DONE = 1
_WRITEFUNC_PAUSE = 0x10000001
_PAUSE_CONT = 0
_E_ABORTED_BY_CALLBACK = 42  # CURLE_ABORTED_BY_CALLBACK
_NO_LIMIT = 1 << 62

_SOCKET_CB = "int(void *, int, int, void *, void *)"
_TIMER_CB = "int(void *, long, void *)"
_DATA_CB = "size_t(void *, size_t, size_t, void *)"


class TransferError(Exception):
    """A transfer failed (connect, TLS, timeout, reset...); ``code`` is libcurl's CURLcode."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Profile:
    """How a handle presents itself: set once when the handle is made, so handles are pooled
    per profile. Custom fingerprints (JA3, HTTP/2 settings, header order) belong here too."""

    impersonate: str | None = "chrome"
    http11: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    connect_timeout: float  # seconds to connect (TCP, proxy, TLS)
    timeout: float  # whole transfer (``stall=False``) or longest silence (``stall=True``)
    stall: bool = False


class _Easy:
    """One pooled easy handle and the transfer it runs (if any)."""

    __slots__ = ("ptr", "profile", "transfer", "userdata", "error_buffer", "limits", "proxy", "method")

    def __init__(self, ptr: Any, profile: Profile) -> None:
        self.ptr = ptr
        self.profile = profile
        self.transfer: Transfer | None = None
        self.userdata = ffi.new_handle(self)  # the callbacks find the handle (and its transfer) through it
        self.error_buffer = ffi.new("char[]", 256)
        self.limits: Limits | None = None  # what is set now: skip setopt calls that change nothing
        self.proxy: str | None = None
        self.method = "GET"


class Transfer:
    """One request in flight. The driver fills it; the owner reads ``status``/``header_lines``
    after ``wait_headers()`` and the body with ``take()``/``wait_data()``; ``abort()`` any time."""

    __slots__ = ("_driver", "_easy", "_slist", "_body", "status", "header_lines", "buffer", "done", "error",
                 "headers_ready", "_waiter", "_paused", "_high_water")

    def __init__(self, driver: CurlDriver, high_water: int) -> None:
        self._driver = driver
        self._easy: _Easy | None = None
        self._slist: Any = ffi.NULL
        self._body: bytes | None = None  # POSTFIELDS points into it: kept alive until the end
        self.status = 0
        self.header_lines: list[bytes] = []  # of the last response block (after redirects)
        self.buffer = bytearray()
        self.done = False
        self.error: TransferError | None = None
        self.headers_ready = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._high_water = high_water

    # -- owner side --------------------------------------------------------------------------------

    async def wait_headers(self) -> None:
        """Until the final response's headers and its first body bytes (or the end) are in."""
        while not self.headers_ready:
            await self._wait()
        if self.error is not None and not self.buffer:
            raise self.error

    def take(self) -> bytes:
        """Everything received and not taken yet (may be empty); resumes a paused transfer."""
        data = bytes(self.buffer)
        self.buffer.clear()
        if self._paused and self._easy is not None:
            self._paused = False
            lib.curl_easy_pause(self._easy.ptr, _PAUSE_CONT)  # may call the write callback at once
        return data

    async def wait_done(self) -> None:
        """Until the transfer ended; raises its error."""
        while not self.done:
            await self._wait()
        if self.error is not None:
            raise self.error

    async def wait_data(self) -> None:
        """Until there is body data to take, or the transfer ended."""
        while not self.buffer and not self.done:
            await self._wait()

    def abort(self) -> None:
        """Stop the transfer now (idempotent, never blocks) and give the handle back."""
        if not self.done:
            self.done = True
            if self.error is None:
                self.error = TransferError(_E_ABORTED_BY_CALLBACK, "transfer aborted")
            self._driver._finish(self)
        self._wake()

    async def _wait(self) -> None:
        waiter = self._waiter = self._driver.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- libcurl side (called from the write/header callbacks and the multi loop) ----------------

    def _on_header(self, line: bytes) -> None:
        if line[:5] == b"HTTP/":
            # A new response block: 1xx, each redirect and the final answer each start with one.
            self.header_lines = []
            parts = line.split(b" ", 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        elif line != b"\r\n" and line != b"\n":
            self.header_lines.append(line)

    def _on_body(self, chunk: Any) -> int:
        if self.done:
            return 0  # aborted: any value other than the size fails the transfer
        buffer = self.buffer
        if len(buffer) >= self._high_water:
            self._paused = True
            return _WRITEFUNC_PAUSE  # libcurl keeps the chunk and offers it again on resume
        buffer += chunk
        if not self.headers_ready:
            self.headers_ready = True
        self._wake()
        return len(chunk)

    def _on_done(self, code: int, message: str) -> None:
        self.done = True
        self.headers_ready = True
        if code:
            self.error = TransferError(code, message)
        self._wake()


class CurlDriver:
    """One libcurl multi handle on one event loop; pools easy handles per profile.

    ``max_transfers`` caps transfers in flight (0: no cap; past it, starts wait in order);
    ``idle_handles`` easy handles are kept for reuse, and libcurl keeps ``idle_connections``
    connections open between transfers.
    """

    def __init__(self, *, proxy: str | None = None, max_transfers: int = 0, idle_handles: int = 64,
                 idle_connections: int = 64, high_water: int = 1 << 20, cacert: str = DEFAULT_CACERT) -> None:
        self.loop = asyncio.get_running_loop()
        self._proxy = proxy
        self._max_transfers = max_transfers
        self._idle_limit = idle_handles
        self._high_water = high_water
        self._cacert = cacert.encode()
        self._multi = lib.curl_multi_init()
        self._idle: dict[Profile, list[_Easy]] = {}
        self._running: dict[Any, _Easy] = {}  # easy pointer → handle, for the multi's done messages
        self._queue: deque[asyncio.Future[None]] = deque()  # starts waiting for a slot under max_transfers
        self._slots = 0  # transfers holding a slot (only counted under max_transfers)
        self._handles = 0  # easy handles alive (running + idle)
        self._fds: dict[int, int] = {}  # socket → the CURL_POLL_* bits the loop watches for it
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._long = ffi.new("long *")
        self._int64 = ffi.new("int64_t *")
        self._still_running = ffi.new("int *")
        self._msgs_left = ffi.new("int *")
        self._closed = False
        # Our own callbacks (not curl_cffi's, which re-register the loop's reader on every call):
        # they must live as long as the multi handle, hence the attributes.
        self._socket_cb = ffi.callback(_SOCKET_CB, self._on_socket)
        self._timer_cb = ffi.callback(_TIMER_CB, self._on_timer)
        self._write_cb = ffi.callback(_DATA_CB, _write, onerror=_callback_failed)
        self._header_cb = ffi.callback(_DATA_CB, _header, onerror=_callback_failed)
        self._msetopt(CurlMOpt.SOCKETFUNCTION, self._socket_cb)
        self._msetopt(CurlMOpt.TIMERFUNCTION, self._timer_cb)
        self._long[0] = idle_connections
        self._msetopt(CurlMOpt.MAXCONNECTS, self._long)

    # -- public --------------------------------------------------------------------------------------

    async def start(self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes | None,
                    limits: Limits, profile: Profile, proxy: str | None = None, collect: bool = False) -> Transfer:
        """Begin a transfer; returns at once (the caller awaits ``wait_headers()``). ``proxy``
        overrides the driver's for this request (``http://``, ``https://``, ``socks5h://``, with
        credentials in the URL). ``collect``: the whole body is wanted at the end, so it is never
        paused for being unread."""
        if self._closed:
            raise TransferError(0, "transport closed")
        if self._max_transfers:
            if self._slots < self._max_transfers and not self._queue:
                self._slots += 1
            else:
                await self._wait_slot()  # returns holding a slot
        transfer = Transfer(self, _NO_LIMIT if collect else self._high_water)
        try:
            easy = self._acquire(profile)
            try:
                self._prepare(easy, transfer, method, url, headers, body, limits, proxy or self._proxy)
            except BaseException:
                self._release(easy)
                raise
        except BaseException:
            self._give_slot()
            raise
        transfer._easy = easy
        easy.transfer = transfer
        self._running[easy.ptr] = easy
        code = lib.curl_multi_add_handle(self._multi, easy.ptr)
        if code:
            self._finish(transfer)
            raise TransferError(code, f"curl_multi_add_handle failed ({code})")
        return transfer

    def stats(self) -> dict[str, int]:
        """Handles alive, running and idle, sockets watched, starts waiting: for tests and leaks."""
        return {"handles": self._handles, "running": len(self._running),
                "idle": sum(len(v) for v in self._idle.values()), "sockets": len(self._fds),
                "waiting": len(self._queue)}

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
        for handles in self._idle.values():
            for easy in handles:
                lib.curl_easy_cleanup(easy.ptr)
                self._handles -= 1
        self._idle.clear()
        lib.curl_multi_cleanup(self._multi)  # closes the cached connections (socket callbacks may run)
        self._multi = ffi.NULL
        for fd in self._fds:
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
        self._fds.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- handles -------------------------------------------------------------------------------------

    def _acquire(self, profile: Profile) -> _Easy:
        idle = self._idle.get(profile)
        if idle:
            return idle.pop()
        ptr = lib.curl_easy_init()
        if ptr == ffi.NULL:
            raise TransferError(0, "curl_easy_init failed")
        easy = _Easy(ptr, profile)
        self._handles += 1
        try:
            self._configure(easy)
        except BaseException:
            lib.curl_easy_cleanup(ptr)
            self._handles -= 1
            raise
        return easy

    def _configure(self, easy: _Easy) -> None:
        """Everything that stays for the handle's life. No cookie engine is ever enabled: handles
        serve every account in turn, and callers send the cookies they mean to."""
        setopt = self._setopt
        setopt(easy, CurlOpt.ERRORBUFFER, easy.error_buffer)
        setopt(easy, CurlOpt.WRITEFUNCTION, self._write_cb)
        setopt(easy, CurlOpt.WRITEDATA, easy.userdata)
        setopt(easy, CurlOpt.HEADERFUNCTION, self._header_cb)
        setopt(easy, CurlOpt.HEADERDATA, easy.userdata)
        setopt(easy, CurlOpt.CAINFO, self._cacert)
        setopt(easy, CurlOpt.PROXY_CAINFO, self._cacert)
        setopt(easy, CurlOpt.ACCEPT_ENCODING, b"gzip, deflate, br")
        self._set_long(easy, CurlOpt.NOSIGNAL, 1)
        self._set_long(easy, CurlOpt.FOLLOWLOCATION, 1)
        self._set_long(easy, CurlOpt.MAXREDIRS, 30)
        self._set_long(easy, CurlOpt.SUPPRESS_CONNECT_HEADERS, 1)  # a proxy's CONNECT answer is not ours
        self._set_long(easy, CurlOpt.PROXY_CREDENTIAL_NO_REUSE, 1)  # a connection serves one proxy login
        profile = easy.profile
        if profile.http11:
            self._set_long(easy, CurlOpt.HTTP_VERSION, int(CurlHttpVersion.V1_1))
        else:
            # Many streams start at once: wait for the first connection to learn whether it can
            # multiplex (HTTP/2) instead of opening one connection per stream.
            self._set_long(easy, CurlOpt.PIPEWAIT, 1)
        if profile.impersonate:
            target = resolve_latest_browser_type(profile.impersonate)  # "chrome" → the newest chrome
            if lib.curl_easy_impersonate(easy.ptr, target.encode(), 1):
                raise TransferError(0, f"impersonating {profile.impersonate!r} is not supported")

    def _release(self, easy: _Easy) -> None:
        easy.transfer = None
        idle = self._idle.setdefault(easy.profile, [])
        if len(idle) < self._idle_limit and not self._closed:
            idle.append(easy)
        else:
            lib.curl_easy_cleanup(easy.ptr)
            self._handles -= 1

    def _prepare(self, easy: _Easy, transfer: Transfer, method: str, url: str,
                 headers: Iterable[tuple[str, str]], body: bytes | None, limits: Limits, proxy: str | None) -> None:
        ptr = easy.ptr
        setopt = lib._curl_easy_setopt
        easy.error_buffer[0] = b"\0"  # libcurl leaves an earlier transfer's message in it
        setopt(ptr, _URL, url.encode())
        slist = ffi.NULL
        for name, value in headers:
            slist = lib.curl_slist_append(slist, f"{name}: {value}".encode() if value else f"{name};".encode())
        slist = lib.curl_slist_append(slist, b"Expect:")  # never wait for a 100-continue
        transfer._slist = slist
        setopt(ptr, _HTTPHEADER, slist)
        if method == "POST" or body is not None:
            body = body or b""
            transfer._body = body
            self._int64[0] = len(body)
            setopt(ptr, _POSTFIELDSIZE_LARGE, self._int64)
            setopt(ptr, _POSTFIELDS, body)  # not copied: the transfer keeps ``body`` alive
            if method != "POST" or easy.method not in ("POST", "GET"):
                setopt(ptr, _CUSTOMREQUEST, method.encode() if method != "POST" else ffi.NULL)
        else:
            self._long[0] = 1
            setopt(ptr, _HTTPGET, self._long)  # also undoes an earlier POST on this handle
            setopt(ptr, _CUSTOMREQUEST, method.encode() if method not in ("GET", "HEAD") else ffi.NULL)
            if method == "HEAD" or easy.method == "HEAD":
                self._long[0] = 1 if method == "HEAD" else 0
                setopt(ptr, _NOBODY, self._long)
        easy.method = method
        if easy.limits != limits:
            self._set_limits(easy, limits)
        if easy.proxy != proxy:
            setopt(ptr, _PROXY, proxy.encode() if proxy else ffi.NULL)
            self._long[0] = 1 if proxy and url.startswith("https:") and not proxy.startswith("socks") else 0
            setopt(ptr, _HTTPPROXYTUNNEL, self._long)
            easy.proxy = proxy

    def _set_limits(self, easy: _Easy, limits: Limits) -> None:
        set_long = self._set_long
        set_long(easy, _CONNECTTIMEOUT_MS, max(1, int(limits.connect_timeout * 1000)))
        if limits.stall:
            # A stream may run for as long as the backend generates; what must not pass is
            # ``timeout`` seconds without a byte (below 1 byte/s over that window).
            set_long(easy, _TIMEOUT_MS, 0)
            set_long(easy, _LOW_SPEED_LIMIT, 1)
            set_long(easy, _LOW_SPEED_TIME, max(1, round(limits.timeout)))
        else:
            set_long(easy, _TIMEOUT_MS, max(1, int(limits.timeout * 1000)))
            set_long(easy, _LOW_SPEED_LIMIT, 0)
            set_long(easy, _LOW_SPEED_TIME, 0)
        easy.limits = limits

    def _set_long(self, easy: _Easy, option: int, value: int) -> None:
        self._long[0] = value
        code = lib._curl_easy_setopt(easy.ptr, option, self._long)
        if code:
            raise TransferError(code, f"curl_easy_setopt({int(option)}) failed ({code})")

    def _setopt(self, easy: _Easy, option: int, value: Any) -> None:
        code = lib._curl_easy_setopt(easy.ptr, option, value)
        if code:
            raise TransferError(code, f"curl_easy_setopt({int(option)}) failed ({code})")

    def _msetopt(self, option: int, value: Any) -> None:
        code = lib.curl_multi_setopt(self._multi, option, value)
        if code:
            raise TransferError(code, f"curl_multi_setopt({int(option)}) failed ({code})")

    def _finish(self, transfer: Transfer) -> None:
        """The transfer is over (done, failed or aborted): detach its handle and recycle it."""
        easy = transfer._easy
        if easy is None:
            return
        transfer._easy = None
        self._running.pop(easy.ptr, None)
        if self._multi != ffi.NULL:
            lib.curl_multi_remove_handle(self._multi, easy.ptr)  # aborts a running transfer
        if transfer._slist != ffi.NULL:
            lib.curl_slist_free_all(transfer._slist)
            transfer._slist = ffi.NULL
        transfer._body = None
        self._release(easy)
        self._give_slot()

    async def _wait_slot(self) -> None:
        waiter = self.loop.create_future()
        self._queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give_slot()  # handed a slot, but leaving: pass it on
            raise

    def _give_slot(self) -> None:
        """A slot is free: it goes straight to the oldest waiting start, else back to the count."""
        if not self._max_transfers:
            return
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._slots -= 1

    # -- the multi loop ------------------------------------------------------------------------------

    def _on_socket(self, _easy: Any, fd: int, what: int, _clientp: Any, _socketp: Any) -> int:
        """libcurl says which events it wants on ``fd``; the loop's reader/writer follow, and
        only a change touches the selector."""
        loop = self.loop
        watched = self._fds.get(fd, 0)
        wanted = 0 if what == _POLL_REMOVE else what & (_POLL_IN | _POLL_OUT)
        if wanted == watched:
            return 0
        if (watched ^ wanted) & _POLL_IN:
            if wanted & _POLL_IN:
                loop.add_reader(fd, self._act, fd, _CSELECT_IN)
            else:
                loop.remove_reader(fd)
        if (watched ^ wanted) & _POLL_OUT:
            if wanted & _POLL_OUT:
                loop.add_writer(fd, self._act, fd, _CSELECT_OUT)
            else:
                loop.remove_writer(fd)
        if wanted:
            self._fds[fd] = wanted
        else:
            del self._fds[fd]
        return 0

    def _on_timer(self, _multi: Any, timeout_ms: int, _clientp: Any) -> int:
        """libcurl's single timer: -1 removes it, 0 means "as soon as possible"."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timeout_ms == 0:
            self._timer = self.loop.call_soon(self._act, _SOCKET_TIMEOUT, 0)
        elif timeout_ms > 0:
            self._timer = self.loop.call_later(timeout_ms / 1000, self._act, _SOCKET_TIMEOUT, 0)
        return 0

    def _act(self, fd: int, events: int) -> None:
        multi = self._multi
        if multi == ffi.NULL:
            return
        if fd == _SOCKET_TIMEOUT:
            self._timer = None
        lib.curl_multi_socket_action(multi, fd, events, self._still_running)
        info_read, msgs_left, running = lib.curl_multi_info_read, self._msgs_left, self._running
        while (msg := info_read(multi, msgs_left)) != ffi.NULL:
            if msg.msg != _MSG_DONE:
                continue
            easy = running.get(msg.easy_handle)
            if easy is None or (transfer := easy.transfer) is None:
                continue
            code = msg.data.result
            message = ffi.string(easy.error_buffer).decode("utf-8", "replace") if code else ""
            transfer._on_done(code, message or f"curl error {code}")
            self._finish(transfer)


def _write(ptr: Any, size: int, nmemb: int, userdata: Any) -> int:
    transfer = ffi.from_handle(userdata).transfer
    if transfer is None:
        return 0
    return transfer._on_body(ffi.buffer(ptr, nmemb))


def _header(ptr: Any, size: int, nmemb: int, userdata: Any) -> int:
    transfer = ffi.from_handle(userdata).transfer
    if transfer is None:
        return 0
    transfer._on_header(ffi.buffer(ptr, nmemb)[:])
    return nmemb


def _callback_failed(exc_type: Any, exc: Any, tb: Any) -> int:
    """A bug in a callback must fail the transfer, not the process: 0 makes libcurl stop it."""
    return 0
