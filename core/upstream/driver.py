"""A lean libcurl driver on the asyncio loop, over curl_cffi's C bindings (``curl_cffi.lib``).

curl_cffi's ``AsyncSession`` re-applies every option (impersonation included) to a reset handle
for each request, builds Request/Response/Headers/cookie objects, calls Python for every header
line, and its ``AsyncCurl`` re-registers the loop's reader on every socket event. Here:

- one multi handle runs every transfer; easy handles are configured once per :class:`Profile`
  and pooled, and a request sets only what changes (URL, header list, body, and timeouts or the
  proxy when they differ from the handle's last request);
- libcurl writes response headers straight into a memory stream (no Python per header line);
  the body goes through one Python callback per chunk into the transfer's ``bytearray``, with
  back-pressure: past ``high_water`` unread bytes the callback pauses the transfer;
- libcurl's sockets sit in an epoll set of the driver's own, which the loop watches as one
  reader: a socket joining or leaving (every request on a kept-alive connection does both) is
  one ``epoll_ctl`` instead of a selector update through asyncio;
- ``Transfer.abort()`` removes the handle from the multi handle, which stops the transfer at once
  (libcurl closes an HTTP/1.1 connection mid-body, resets an HTTP/2 stream) and never waits.

Nothing here blocks: libcurl's sockets are non-blocking; name resolution runs in libcurl's
resolver thread.

Per request, ``start`` already takes a proxy (connections are matched per proxy and proxy login)
and a :class:`Profile` (handles are pooled per profile, so a per-account fingerprint is another
``Profile``). A WebSocket upgrade would be one more kind of transfer: started with
``CURLOPT_CONNECT_ONLY=2``, it keeps its handle after the handshake instead of returning it to the
pool, and its socket stays in the same epoll set, dispatched to ``curl_ws_recv``/``curl_ws_send``
rather than to the multi handle.
"""

from __future__ import annotations

import asyncio
import select
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cffi
from curl_cffi import CurlHttpVersion, CurlMOpt, CurlOpt, ffi, lib
from curl_cffi.aio import get_selector
from curl_cffi.curl import DEFAULT_CACERT
from curl_cffi.requests.impersonate import resolve_latest_browser_type

from core.upstream.fingerprint import Fingerprint

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
_PIPEWAIT = int(CurlOpt.PIPEWAIT)

_POLL_IN, _POLL_OUT, _POLL_REMOVE = 1, 2, 4
_CSELECT_IN, _CSELECT_OUT, _CSELECT_ERR = 1, 2, 4
_SOCKET_TIMEOUT = -1
_MSG_DONE = 1
_WRITEFUNC_PAUSE = 0x10000001
_PAUSE_CONT = 0
_E_ABORTED_BY_CALLBACK = 42  # CURLE_ABORTED_BY_CALLBACK
_NO_LIMIT = 1 << 62
_GET, _HEAD, _POST = 0, 1, 2  # a handle's request mode
_PLAIN_METHOD = ("GET", "HEAD", "POST")  # each mode's own method: no CUSTOMREQUEST needed
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # always send a body, empty if none is given

_SOCKET_CB = "int(void *, int, int, void *, void *)"
_TIMER_CB = "int(void *, long, void *)"
_DATA_CB = "size_t(void *, size_t, size_t, void *)"

# libc, for the header memory streams (see _HeadFile).
_libc_ffi = cffi.FFI()
_libc_ffi.cdef("""
    typedef struct _IO_FILE FILE;
    FILE *open_memstream(char **, size_t *);
    int fflush(FILE *);
    int fclose(FILE *);
    void rewind(FILE *);
    size_t fwrite(const void *, size_t, size_t, FILE *);
    void free(void *);
""")
_libc = _libc_ffi.dlopen(None)
_FWRITE = ffi.cast("void *", int(_libc_ffi.cast("uintptr_t", _libc_ffi.addressof(_libc, "fwrite"))))


class TransferError(Exception):
    """A transfer failed (connect, TLS, timeout, reset...); ``code`` is libcurl's CURLcode."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Profile:
    """How a handle presents itself. Set once when a handle is made, so handles are pooled per
    profile: a curl_cffi browser target (``impersonate``) or a recorded client's ``fingerprint``
    (core/upstream/fingerprint.py), which wins when both are given."""

    impersonate: str | None = "chrome"
    http11: bool = False
    fingerprint: Fingerprint | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Timeouts of one request. Callers keep one instance per setting: handles compare by
    identity to skip setting the same timeouts again."""

    connect_timeout: float  # seconds to connect (TCP, proxy, TLS)
    timeout: float  # whole transfer (``stall=False``) or longest silence (``stall=True``)
    stall: bool = False


class _HeadFile:
    """Where libcurl writes response header lines: a memory stream it ``fwrite``s to directly.

    A Python header callback costs about 10,000 instructions per line (cffi's callback machinery
    plus the frame), and an answer has 15-20 lines. libc's ``fwrite`` has the signature of a
    header callback (it is libcurl's default write function), so libcurl writes each line into
    an ``open_memstream`` buffer without entering Python; the block is read once, when the body
    starts.
    """

    __slots__ = ("file", "data", "size")

    def __init__(self) -> None:
        self.data = _libc_ffi.new("char **")
        self.size = _libc_ffi.new("size_t *")
        self.file = _libc.open_memstream(self.data, self.size)
        if self.file == _libc_ffi.NULL:
            raise MemoryError("open_memstream failed")

    def as_curl_pointer(self) -> Any:
        return ffi.cast("void *", int(_libc_ffi.cast("uintptr_t", self.file)))

    def rewind(self) -> None:
        _libc.rewind(self.file)

    def read(self) -> bytes:
        _libc.fflush(self.file)  # brings ``data``/``size`` up to date
        return _libc_ffi.buffer(self.data[0], self.size[0])[:]

    def close(self) -> None:
        if self.file != _libc_ffi.NULL:
            _libc.fclose(self.file)
            _libc.free(self.data[0])
            self.file = _libc_ffi.NULL


def _last_head(raw: bytes) -> tuple[int, bytes]:
    """Status and header lines of the last response block in ``raw``: 1xx answers and
    redirects come first, each block starting with its status line (no header line can start
    with "HTTP/": "/" is not allowed in a header name)."""
    start = raw.rfind(b"\nHTTP/") + 1
    end = raw.find(b"\r\n", start)
    if end < 0:
        return 0, b""
    parts = raw[start:end].split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, raw[end + 2:]


class _Easy:
    """One pooled easy handle and the transfer it runs (if any)."""

    __slots__ = ("ptr", "profile", "transfer", "write_cb", "head", "error_buffer", "limits", "proxy", "mode",
                 "custom", "pipewait")

    def __init__(self, ptr: Any, profile: Profile) -> None:
        self.ptr = ptr
        self.profile = profile
        self.transfer: Transfer | None = None
        self.write_cb = ffi.callback(_DATA_CB, _writer(self), onerror=_callback_failed)
        self.head = _HeadFile()
        self.error_buffer = ffi.new("char[]", 256)
        self.limits: Limits | None = None  # what is set now: skip setopt calls that change nothing
        self.proxy: str | None = None
        self.mode = _GET
        self.custom: str | None = None  # CUSTOMREQUEST as set now
        self.pipewait = False

    def close(self) -> None:
        lib.curl_easy_cleanup(self.ptr)
        self.head.close()


class Transfer:
    """One request in flight. The owner awaits ``headers()``, reads ``status``/``head``, then
    the body with ``take()`` (awaiting ``wait()`` while there is none); ``abort()`` at any time."""

    __slots__ = ("_driver", "_easy", "_slist", "_body", "status", "head", "buffer", "done", "error",
                 "headers_ready", "waiter", "_paused", "_high_water")

    def __init__(self, driver: CurlDriver, high_water: int) -> None:
        self._driver = driver
        self._easy: _Easy | None = None
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

    def _head_in(self, easy: _Easy) -> None:
        """The final response's header block is complete (its body starts, or it ended)."""
        self.headers_ready = True
        self.status, self.head = _last_head(easy.head.read())

    def _on_done(self, code: int, message: str) -> None:
        if not self.headers_ready and self._easy is not None:
            self._head_in(self._easy)
        self.done = True
        if code:
            self.error = TransferError(code, message)
        self._wake()


def _writer(easy: _Easy) -> Any:
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


def _callback_failed(exc_type: Any, exc: Any, tb: Any) -> int:
    """A bug in a callback must fail the transfer, not the process: 0 makes libcurl stop it."""
    return 0


class _EpollSockets:
    """libcurl's sockets in an epoll set of our own; the loop watches the set's descriptor.

    ``epoll_ctl`` from C costs a few hundred instructions; asyncio's add_reader/remove_reader cost
    tens of thousands (selector keys, handles), and libcurl drops a kept-alive connection's
    socket from its watch list after every request and adds it back on the next. A descriptor
    closed by libcurl leaves the set by itself; the bookkeeping here tolerates that.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, act: Any) -> None:
        self._loop = loop
        self._epoll = select.epoll()
        self._mask: dict[int, int] = {}
        self._act = act
        loop.add_reader(self._epoll.fileno(), self._ready)

    def __len__(self) -> int:
        return len(self._mask)

    def set(self, fd: int, what: int) -> None:
        mask = (select.EPOLLIN if what & _POLL_IN else 0) | (select.EPOLLOUT if what & _POLL_OUT else 0)
        old = self._mask.get(fd)
        if old == mask:
            return
        try:
            if old is None:
                self._epoll.register(fd, mask)
            else:
                self._epoll.modify(fd, mask)
        except FileNotFoundError:  # closed and reopened under the same number since: new socket
            self._epoll.register(fd, mask)
        except FileExistsError:
            self._epoll.modify(fd, mask)
        self._mask[fd] = mask

    def remove(self, fd: int) -> None:
        if self._mask.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass  # already closed: the kernel dropped it

    def _ready(self) -> None:
        act = self._act
        for fd, events in self._epoll.poll(0):
            flags = 0
            if events & (select.EPOLLIN | select.EPOLLHUP):
                flags |= _CSELECT_IN
            if events & select.EPOLLOUT:
                flags |= _CSELECT_OUT
            if events & select.EPOLLERR:
                flags |= _CSELECT_ERR
            act(fd, flags)

    def close(self) -> None:
        self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._mask.clear()


class _LoopSockets:
    """The portable fallback (no epoll): each socket is a reader/writer of the loop (on Windows'
    proactor loop, of the selector thread curl_cffi runs beside it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, act: Any) -> None:
        self._loop = get_selector(loop)
        self._mask: dict[int, int] = {}
        self._act = act

    def __len__(self) -> int:
        return len(self._mask)

    def set(self, fd: int, what: int) -> None:
        old = self._mask.get(fd, 0)
        changed = old ^ what
        if changed & _POLL_IN:
            if what & _POLL_IN:
                self._loop.add_reader(fd, self._act, fd, _CSELECT_IN)
            else:
                self._loop.remove_reader(fd)
        if changed & _POLL_OUT:
            if what & _POLL_OUT:
                self._loop.add_writer(fd, self._act, fd, _CSELECT_OUT)
            else:
                self._loop.remove_writer(fd)
        self._mask[fd] = what

    def remove(self, fd: int) -> None:
        if self._mask.pop(fd, None) is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)

    def close(self) -> None:
        for fd in list(self._mask):
            self.remove(fd)


_SOCKETS: Any = _EpollSockets if hasattr(select, "epoll") else _LoopSockets


class CurlDriver:
    """One libcurl multi handle on the running event loop; pools easy handles per profile.

    ``max_transfers`` caps transfers in flight (0: no cap; past it, ``slot()`` waits in order);
    ``idle_handles`` easy handles are kept for reuse, and libcurl keeps up to ``idle_connections``
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
        self._queue: deque[asyncio.Future[None]] = deque()  # ``slot()`` callers waiting under max_transfers
        self._slots = 0  # transfers holding a slot (only counted under max_transfers)
        self._handles = 0  # easy handles alive (running + idle)
        self._sockets = _SOCKETS(self.loop, self._act)
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._timer_at = 0.0  # when ``_timer`` fires (loop time)
        self._wanted_at: float | None = None  # libcurl's latest deadline (loop time), None: none
        self._starting = False  # inside curl_multi_add_handle: a due timer is run right after it
        self._due = False
        self._long = ffi.new("long *")
        self._int64 = ffi.new("int64_t *")
        self._still_running = ffi.new("int *")
        self._msgs_left = ffi.new("int *")
        self._closed = False
        # Callbacks of our own: curl_cffi's re-register the loop's reader at every call. They
        # must live as long as the multi handle, hence the attributes.
        self._socket_cb = ffi.callback(_SOCKET_CB, self._on_socket)
        self._timer_cb = ffi.callback(_TIMER_CB, self._on_timer)
        self._msetopt(CurlMOpt.SOCKETFUNCTION, self._socket_cb)
        self._msetopt(CurlMOpt.TIMERFUNCTION, self._timer_cb)
        self._long[0] = idle_connections
        self._msetopt(CurlMOpt.MAXCONNECTS, self._long)

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
            easy = self._acquire(profile)
            try:
                self._prepare(easy, transfer, method, url, headers, body, limits, self._proxy if proxy is None else proxy)
            except BaseException:
                if transfer._slist != ffi.NULL:
                    lib.curl_slist_free_all(transfer._slist)
                self._release(easy)
                raise
        except BaseException:
            self._give_slot()
            raise
        transfer._easy = easy
        easy.transfer = transfer
        self._running[easy.ptr] = easy
        self._due = False
        self._starting = True
        try:
            code = lib.curl_multi_add_handle(self._multi, easy.ptr)
        finally:
            self._starting = False
        if code:
            transfer._on_done(code, f"curl_multi_add_handle failed ({code})")
            self._finish(transfer)
            raise transfer.error  # type: ignore[misc]
        if self._due:
            # libcurl asked for its timer "now": run it here rather than one loop turn later.
            self._due = False
            self._wanted_at = None
            self._act(_SOCKET_TIMEOUT, 0)
        return transfer

    def stats(self) -> dict[str, int]:
        """Handles alive, running and idle; sockets watched; ``slot()`` callers waiting."""
        return {"handles": self._handles, "running": len(self._running),
                "idle": sum(len(v) for v in self._idle.values()), "sockets": len(self._sockets),
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
                easy.close()
                self._handles -= 1
        self._idle.clear()
        lib.curl_multi_cleanup(self._multi)  # closes the cached connections (socket callbacks run)
        self._multi = ffi.NULL
        self._sockets.close()
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
            easy.close()
            self._handles -= 1
            raise
        return easy

    def _configure(self, easy: _Easy) -> None:
        """Everything that stays for the handle's life. No cookie engine is ever enabled: handles
        serve every account in turn, and callers send the cookies they mean to."""
        setopt = self._setopt
        setopt(easy, CurlOpt.ERRORBUFFER, easy.error_buffer)
        setopt(easy, CurlOpt.WRITEFUNCTION, easy.write_cb)
        setopt(easy, CurlOpt.HEADERFUNCTION, _FWRITE)
        setopt(easy, CurlOpt.HEADERDATA, easy.head.as_curl_pointer())
        setopt(easy, CurlOpt.CAINFO, self._cacert)
        setopt(easy, CurlOpt.PROXY_CAINFO, self._cacert)
        setopt(easy, CurlOpt.ACCEPT_ENCODING, b"gzip, deflate, br")
        self._set_long(easy, CurlOpt.NOSIGNAL, 1)
        self._set_long(easy, CurlOpt.FOLLOWLOCATION, 1)
        self._set_long(easy, CurlOpt.MAXREDIRS, 30)
        self._set_long(easy, CurlOpt.SUPPRESS_CONNECT_HEADERS, 1)  # a proxy's CONNECT answer is not ours
        self._set_long(easy, CurlOpt.PROXY_CREDENTIAL_NO_REUSE, 1)  # a connection serves one proxy login
        # libcurl's default (64 KiB) is allocated for every transfer that sends a body and kept
        # until it ends: for a 10-minute stream, 64 KiB held to send a few KiB once. 16 KiB is
        # the smallest allowed.
        self._set_long(easy, CurlOpt.UPLOAD_BUFFERSIZE, 16 * 1024)
        profile = easy.profile
        if profile.fingerprint is not None:
            profile.fingerprint.apply(lambda option, value: self._set_long(easy, option, value) if isinstance(value, int)
                                      else self._setopt(easy, option, value))
        elif profile.impersonate:
            target = resolve_latest_browser_type(profile.impersonate)  # "chrome" → the newest chrome
            if lib.curl_easy_impersonate(easy.ptr, target.encode(), 1):
                raise TransferError(0, f"impersonating {profile.impersonate!r} is not supported")
        if profile.http11:
            self._set_long(easy, CurlOpt.HTTP_VERSION, int(CurlHttpVersion.V1_1))

    def _release(self, easy: _Easy) -> None:
        easy.transfer = None
        idle = self._idle.setdefault(easy.profile, [])
        if len(idle) < self._idle_limit and not self._closed:
            idle.append(easy)
        else:
            easy.close()
            self._handles -= 1

    def _prepare(self, easy: _Easy, transfer: Transfer, method: str, url: str,
                 headers: Iterable[tuple[str, str | None]], body: bytes | None, limits: Limits, proxy: str | None) -> None:
        ptr = easy.ptr
        setopt = lib._curl_easy_setopt
        easy.error_buffer[0] = b"\0"  # libcurl leaves an earlier transfer's message in it
        easy.head.rewind()
        setopt(ptr, _URL, url.encode())
        append = lib.curl_slist_append
        slist = ffi.NULL
        for name, value in headers:
            # "name;" sends an empty header, "name:" removes one libcurl would add (as curl_cffi)
            line = f"{name}: {value}" if value else f"{name};" if value is not None else f"{name}:"
            slist = append(slist, line.encode())
        slist = append(slist, b"Expect:")  # never wait for a 100-continue
        transfer._slist = slist
        setopt(ptr, _HTTPHEADER, slist)
        mode = _POST if body is not None or method in _BODY_METHODS else _HEAD if method == "HEAD" else _GET
        if mode != easy.mode:
            self._switch_mode(easy, mode)
        if mode == _POST:
            body = body or b""
            transfer._body = body
            self._int64[0] = len(body)
            setopt(ptr, _POSTFIELDSIZE_LARGE, self._int64)
            setopt(ptr, _POSTFIELDS, body)  # not copied: the transfer keeps ``body`` alive
        custom = None if method == _PLAIN_METHOD[mode] else method
        if custom != easy.custom:
            setopt(ptr, _CUSTOMREQUEST, custom.encode() if custom else ffi.NULL)
            easy.custom = custom
        pipewait = url.startswith("https:") and not easy.profile.http11
        if easy.pipewait != pipewait:
            # Many streams starting at once over TLS: wait for the first connection's ALPN to
            # learn whether it multiplexes (HTTP/2) rather than open one connection per stream.
            # Not for plain http://, where libcurl never learns it and would queue every
            # transfer behind the busy connection.
            self._long[0] = int(pipewait)
            setopt(ptr, _PIPEWAIT, self._long)
            easy.pipewait = pipewait
        if easy.limits is not limits:
            self._set_limits(easy, limits)
        if easy.proxy != proxy:
            # An https:// URL goes through a CONNECT tunnel by itself; http:// is forwarded. NULL
            # lets libcurl read the environment's proxy variables; "" turns every proxy off.
            setopt(ptr, _PROXY, ffi.NULL if proxy is None else proxy.encode())
            easy.proxy = proxy

    def _switch_mode(self, easy: _Easy, mode: int) -> None:
        """GET, HEAD (no body back) or a request with a body. Leaving POST mode also drops the
        body pointer, which would dangle once that transfer's body is freed."""
        ptr = easy.ptr
        if easy.mode == _POST:
            lib._curl_easy_setopt(ptr, _POSTFIELDS, ffi.NULL)
        if mode == _POST:
            if easy.mode == _HEAD:
                self._set_long(easy, _NOBODY, 0)
        else:
            self._set_long(easy, _HTTPGET, 1)  # a GET again: no body, NOBODY cleared
            if mode == _HEAD:
                self._set_long(easy, _NOBODY, 1)
        easy.mode = mode

    def _set_limits(self, easy: _Easy, limits: Limits) -> None:
        set_long = self._set_long
        set_long(easy, _CONNECTTIMEOUT_MS, max(1, int(limits.connect_timeout * 1000)))
        if limits.stall:
            # A stream may run for as long as the backend generates; what must not happen is
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

    # -- the multi loop ------------------------------------------------------------------------------

    def _on_socket(self, _easy: Any, fd: int, what: int, _clientp: Any, _socketp: Any) -> int:
        if what == _POLL_REMOVE:
            self._sockets.remove(fd)
        else:
            self._sockets.set(fd, what)
        return 0

    def _on_timer(self, _multi: Any, timeout_ms: int, _clientp: Any) -> int:
        """libcurl's single timer: -1 removes it, 0 means "as soon as possible".

        libcurl moves its deadline on most calls (a transfer in progress pushes it 1 s ahead
        each time). Rather than replace the loop's timer each time, the latest wish is kept in
        ``_wanted_at`` and the loop's timer only moved earlier, never later: one firing early
        just re-arms for the wanted time (see ``_fire``)."""
        if timeout_ms < 0:
            self._wanted_at = None  # a timer still scheduled finds nothing to do
            return 0
        if timeout_ms == 0 and self._starting:
            self._due = True  # ``start`` runs it when curl_multi_add_handle returns
            return 0
        loop = self.loop
        at = loop.time() + timeout_ms / 1000
        self._wanted_at = at
        timer = self._timer
        if timer is not None:
            if self._timer_at <= at:
                return 0
            timer.cancel()
        self._timer = loop.call_soon(self._fire) if timeout_ms == 0 else loop.call_at(at, self._fire)
        self._timer_at = at
        return 0

    def _fire(self) -> None:
        self._timer = None
        wanted = self._wanted_at
        if wanted is None:
            return
        if wanted > self.loop.time() + 0.001:  # moved later since this timer was set
            self._timer = self.loop.call_at(wanted, self._fire)
            self._timer_at = wanted
            return
        self._wanted_at = None  # libcurl reports its next deadline during the action
        self._act(_SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, events: int) -> None:
        multi = self._multi
        if multi == ffi.NULL:
            return
        running = self._running
        lib.curl_multi_socket_action(multi, fd, events, self._still_running)
        if self._still_running[0] >= len(running):
            return  # nothing finished: no message to read
        info_read, msgs_left = lib.curl_multi_info_read, self._msgs_left
        while (msg := info_read(multi, msgs_left)) != ffi.NULL:
            if msg.msg != _MSG_DONE:
                continue
            easy = running.get(msg.easy_handle)
            if easy is None or (transfer := easy.transfer) is None:
                continue
            code = msg.data.result
            message = ffi.string(easy.error_buffer).decode("utf-8", "replace") if code else ""
            transfer._on_done(code, f"curl: ({code}) {message}" if message else f"curl error {code}")
            self._finish(transfer)
