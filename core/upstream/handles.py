"""Easy handles: configured once per :class:`Profile`, pooled, and given only what changes per
request (URL, header list, body, and timeouts or the proxy when they differ from the last one).

libcurl writes response headers straight into a memory stream (:class:`HeadFile`): no Python per
header line. The body callback comes from the owner (core/upstream/transfer.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import cffi
from curl_cffi import CurlHttpVersion, CurlOpt, ffi, lib
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

_GET, _HEAD, _POST = 0, 1, 2  # a handle's request mode
_PLAIN_METHOD = ("GET", "HEAD", "POST")  # each mode's own method: no CUSTOMREQUEST needed
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # always send a body, empty if none is given
DATA_CB = "size_t(void *, size_t, size_t, void *)"

# libc, for the header memory streams (see HeadFile).
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


class HeadFile:
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


def last_head(raw: bytes) -> tuple[int, bytes]:
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


class Easy:
    """One easy handle and the transfer it runs (if any)."""

    __slots__ = ("ptr", "profile", "transfer", "write_cb", "head", "error_buffer", "limits", "proxy", "mode",
                 "custom", "pipewait")

    def __init__(self, ptr: Any, profile: Profile) -> None:
        self.ptr = ptr
        self.profile = profile
        self.transfer: Any = None  # the owner's transfer object while one runs
        self.write_cb: Any = ffi.NULL
        self.head = HeadFile()
        self.error_buffer = ffi.new("char[]", 256)
        self.limits: Limits | None = None  # what is set now: skip setopt calls that change nothing
        self.proxy: str | None = None
        self.mode = _GET
        self.custom: str | None = None  # CUSTOMREQUEST as set now
        self.pipewait = False

    def close(self) -> None:
        lib.curl_easy_cleanup(self.ptr)
        self.head.close()


class HandlePool:
    """Easy handles per profile: made and configured on first use, kept (up to ``idle_limit``)
    between requests. ``writer(easy)`` makes the Python body callback of a new handle."""

    def __init__(self, cacert: bytes, idle_limit: int, writer: Callable[[Easy], Any], on_error: Any) -> None:
        self._cacert = cacert
        self._idle_limit = idle_limit
        self._writer = writer
        self._on_error = on_error
        self._idle: dict[Profile, list[Easy]] = {}
        self.alive = 0  # easy handles alive (running + idle)
        self._long = ffi.new("long *")
        self._int64 = ffi.new("int64_t *")

    def idle(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def acquire(self, profile: Profile) -> Easy:
        idle = self._idle.get(profile)
        if idle:
            return idle.pop()
        return self.new(profile)

    def new(self, profile: Profile) -> Easy:
        """A freshly configured handle (never pooled until ``release``)."""
        ptr = lib.curl_easy_init()
        if ptr == ffi.NULL:
            raise TransferError(0, "curl_easy_init failed")
        easy = Easy(ptr, profile)
        easy.write_cb = ffi.callback(DATA_CB, self._writer(easy), onerror=self._on_error)
        self.alive += 1
        try:
            self._configure(easy)
        except BaseException:
            self.discard(easy)
            raise
        return easy

    def release(self, easy: Easy, keep: bool = True) -> None:
        """Back to the pool (or freed when the pool is full, or ``keep`` is False)."""
        easy.transfer = None
        idle = self._idle.setdefault(easy.profile, [])
        if keep and len(idle) < self._idle_limit:
            idle.append(easy)
        else:
            self.discard(easy)

    def discard(self, easy: Easy) -> None:
        easy.close()
        self.alive -= 1

    def close(self) -> None:
        for handles in self._idle.values():
            for easy in handles:
                self.discard(easy)
        self._idle.clear()

    # -- configuration -------------------------------------------------------------------------------

    def _configure(self, easy: Easy) -> None:
        """Everything that stays for the handle's life. No cookie engine is ever enabled: handles
        serve every account in turn, and callers send the cookies they mean to."""
        setopt = self.setopt
        setopt(easy, CurlOpt.ERRORBUFFER, easy.error_buffer)
        setopt(easy, CurlOpt.WRITEFUNCTION, easy.write_cb)
        setopt(easy, CurlOpt.HEADERFUNCTION, _FWRITE)
        setopt(easy, CurlOpt.HEADERDATA, easy.head.as_curl_pointer())
        setopt(easy, CurlOpt.CAINFO, self._cacert)
        setopt(easy, CurlOpt.PROXY_CAINFO, self._cacert)
        setopt(easy, CurlOpt.ACCEPT_ENCODING, b"gzip, deflate, br")
        self.set_long(easy, CurlOpt.NOSIGNAL, 1)
        self.set_long(easy, CurlOpt.FOLLOWLOCATION, 1)
        self.set_long(easy, CurlOpt.MAXREDIRS, 30)
        self.set_long(easy, CurlOpt.SUPPRESS_CONNECT_HEADERS, 1)  # a proxy's CONNECT answer is not ours
        self.set_long(easy, CurlOpt.PROXY_CREDENTIAL_NO_REUSE, 1)  # a connection serves one proxy login
        # libcurl's default (64 KiB) is allocated for every transfer that sends a body and kept
        # until it ends: for a 10-minute stream, 64 KiB held to send a few KiB once. 16 KiB is
        # the smallest allowed.
        self.set_long(easy, CurlOpt.UPLOAD_BUFFERSIZE, 16 * 1024)
        profile = easy.profile
        if profile.fingerprint is not None:
            profile.fingerprint.apply(lambda option, value: self.set_long(easy, option, value) if isinstance(value, int)
                                      else self.setopt(easy, option, value))
        elif profile.impersonate:
            target = resolve_latest_browser_type(profile.impersonate)  # "chrome" → the newest chrome
            if lib.curl_easy_impersonate(easy.ptr, target.encode(), 1):
                raise TransferError(0, f"impersonating {profile.impersonate!r} is not supported")
        if profile.http11:
            self.set_long(easy, CurlOpt.HTTP_VERSION, int(CurlHttpVersion.V1_1))

    def prepare(self, easy: Easy, transfer: Any, method: str, url: str,
                headers: Iterable[tuple[str, str | None]], body: bytes | None, limits: Limits, proxy: str | None) -> None:
        """Set what this request changes. The header list goes to ``transfer._slist`` and the body
        to ``transfer._body`` (libcurl reads both until the transfer ends; the owner frees them)."""
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

    def _switch_mode(self, easy: Easy, mode: int) -> None:
        """GET, HEAD (no body back) or a request with a body. Leaving POST mode also drops the
        body pointer, which would dangle once that transfer's body is freed."""
        ptr = easy.ptr
        if easy.mode == _POST:
            lib._curl_easy_setopt(ptr, _POSTFIELDS, ffi.NULL)
        if mode == _POST:
            if easy.mode == _HEAD:
                self.set_long(easy, _NOBODY, 0)
        else:
            self.set_long(easy, _HTTPGET, 1)  # a GET again: no body, NOBODY cleared
            if mode == _HEAD:
                self.set_long(easy, _NOBODY, 1)
        easy.mode = mode

    def _set_limits(self, easy: Easy, limits: Limits) -> None:
        set_long = self.set_long
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

    def set_long(self, easy: Easy, option: int, value: int) -> None:
        self._long[0] = value
        code = lib._curl_easy_setopt(easy.ptr, option, self._long)
        if code:
            raise TransferError(code, f"curl_easy_setopt({int(option)}) failed ({code})")

    @staticmethod
    def setopt(easy: Easy, option: int, value: Any) -> None:
        code = lib._curl_easy_setopt(easy.ptr, option, value)
        if code:
            raise TransferError(code, f"curl_easy_setopt({int(option)}) failed ({code})")
