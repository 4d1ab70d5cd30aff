"""The gateway as the upstream server of the flows it answers, inside mitmproxy's own process.

An addon cannot stream a response it makes up itself (mitmproxy-facts.md §2). So a flow the
gateway answers goes upstream like any other flow: after every addon's ``request`` hook ran and an
intercepted flow was resumed, mitmproxy asks for a server connection, and for our flows it gets a
*virtual* one: no socket, a pair of in-memory buffers. mitmproxy writes the final request to it
(whatever addons and mitmweb edits made of it), the gateway reads that request off the flow and
writes an HTTP/1.1 answer back, which mitmproxy parses and streams to the client through the usual
``responseheaders``/``response`` hooks. Everything in mitmproxy after the ``request`` hook works as
for a real upstream: the dumper's line, ``-w``, mitmweb's live view, ``store_streamed_bodies``,
other addons' ``stream`` callables, kills (core/hosts/addon.py watches for them).

Two narrow patches make this work (mitmproxy 12.3; checked by tests/unit/test_virtual.py):
``HttpStream.make_server_connection`` asks for a connection to ``(VIRTUAL_HOST, n)`` when the
gateway claims the flow, and the ``asyncio`` that mitmproxy's connection handler opens connections
with answers that host with a ``VirtualConnection``. HTTP/1 clients reuse one virtual connection
for their keep-alive requests, as they would a real server's; HTTP/2 streams get one each, so
mitmproxy's limit of five connections per address never makes a stream wait.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from mitmproxy import http
from mitmproxy.proxy import server as proxy_server
from mitmproxy.proxy.layers.http import ErrorCode, GetHttpConnection, HttpStream, ResponseProtocolError

from core.protocols.base import Reply

logger = logging.getLogger(__name__)

VIRTUAL_HOST = "codex-gateway.invalid"  # never resolved: ``.invalid`` cannot exist in DNS
HIGH_WATER = 256 * 1024  # bytes the gateway may get ahead of mitmproxy before it waits
_H1_PORT = 1  # one reusable address per HTTP/1 client connection

Server = Callable[[http.HTTPFlow, "VirtualConnection"], Awaitable[None]]
Claim = Callable[[http.HTTPFlow], bool]


class VirtualConnection:
    """Both ends of one in-memory server connection: mitmproxy reads and writes it through the
    StreamReader/StreamWriter methods it uses; the gateway ``feed``s the answer."""

    __slots__ = ("id", "peer", "flows", "_chunks", "_buffered", "_eof", "_reader", "_writable", "closed", "tasks", "_serve")

    def __init__(self, conn_id: int, serve: Server) -> None:
        self.id = conn_id
        self.peer = (VIRTUAL_HOST, conn_id)
        self.flows: collections.deque[http.HTTPFlow] = collections.deque()  # assigned, not yet answered
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._reader: asyncio.Future[None] | None = None  # mitmproxy waiting for data
        self._writable: asyncio.Future[None] | None = None  # the gateway waiting for mitmproxy to catch up
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()
        self._serve = serve

    # --- the StreamWriter side: mitmproxy sends the request ------------------------------------

    def write(self, data: bytes) -> None:
        # The request bytes are not parsed: the flow already holds the request they encode. The
        # first write of a request (its head) starts the answer; HTTP/1 sends a request only once
        # the previous answer has been read whole, so answers never overlap on one connection.
        if self.flows:
            task = asyncio.get_running_loop().create_task(self._serve(self.flows.popleft(), self))
            if not task.done():
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer, "sockname": ("127.0.0.1", 0)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        """mitmproxy is done with the connection (the client left, or the flow was killed)."""
        if self.closed:
            return
        self.closed = True
        _live.pop(self.id, None)
        self.feed_eof()
        self._wake_writer()
        for task in list(self.tasks):
            task.cancel()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass

    # --- the StreamReader side: mitmproxy reads the answer -------------------------------------

    async def read(self, n: int = -1) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._wake_writer()
        return data

    # --- the gateway's side ----------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    def feed_eof(self) -> None:
        self._eof = True
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    async def writable(self) -> None:
        """Wait while mitmproxy (that is, the client) is more than ``HIGH_WATER`` bytes behind."""
        while self._buffered > HIGH_WATER and not self.closed:
            self._writable = asyncio.get_running_loop().create_future()
            try:
                await self._writable
            finally:
                self._writable = None

    def _wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)


class Http1Answer:
    """An ``Exchange`` sink writing HTTP/1.1 to a virtual connection: a complete reply with its
    length, or a stream in chunks (so the connection stays reusable)."""

    __slots__ = ("_conn", "_head_only", "started")

    def __init__(self, conn: VirtualConnection, method: str) -> None:
        self._conn = conn
        self._head_only = method == "HEAD"
        self.started = False

    @staticmethod
    def _head(status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]], framing: bytes) -> bytes:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {status} {reason}".encode()]
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        lines.extend(f"{name}: {value}".encode() for name, value in pairs
                     if name.lower() not in ("content-length", "transfer-encoding", "connection"))
        lines.append(framing)
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def reply(self, reply: Reply) -> None:
        self.started = True
        status, body = reply.status, reply.body
        no_body = status in (204, 304)
        framing = b"content-length: 0" if no_body else b"content-length: %d" % len(body)
        self._conn.feed(self._head(status, reply.headers, framing) + (b"" if no_body or self._head_only else body))

    async def start(self, status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        self.started = True
        self._conn.feed(self._head(status, headers, b"transfer-encoding: chunked"))

    async def write(self, data: bytes) -> None:
        if data and not self._head_only:
            self._conn.feed(b"%x\r\n%s\r\n" % (len(data), data))
            await self._conn.writable()

    async def end(self) -> None:
        if not self._head_only:
            self._conn.feed(b"0\r\n\r\n")


# --- the patches ---------------------------------------------------------------------------------

_ids = itertools.count(1 << 16)
_live: dict[int, VirtualConnection] = {}
_server: Server | None = None
_claim: Claim | None = None
_original_make_server_connection = HttpStream.make_server_connection


class _Asyncio:
    """``asyncio`` as mitmproxy's connection handler sees it: the same module, except that
    connections to ``VIRTUAL_HOST`` are made in memory."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def open_connection(host: str, port: int, **kwargs: Any) -> Any:
        if host != VIRTUAL_HOST:
            return await asyncio.open_connection(host, port, **kwargs)
        if _server is None:
            raise ConnectionRefusedError("codex-proxy's gateway is not running")
        # Suspend once, as a real connect would: mitmproxy registers the connection's task only
        # after the task first yields, and would overwrite what is registered before that.
        await asyncio.sleep(0)
        conn = VirtualConnection(next(_ids), _server)
        _live[conn.id] = conn
        return conn, conn


def _make_server_connection(self: HttpStream) -> Any:
    if _claim is None or not _claim(self.flow):
        return (yield from _original_make_server_connection(self))
    port = _H1_PORT if self.context.client.alpn not in (b"h2", b"h3") else next(_ids)
    connection, err = yield GetHttpConnection((VIRTUAL_HOST, port), False, None, "tcp")
    if err:
        yield from self.handle_protocol_error(ResponseProtocolError(self.stream_id, err, ErrorCode.CONNECT_FAILED))
        return False
    self.context.server = self.flow.server_conn = connection
    conn = _live.get(connection.peername[1]) if connection.peername else None
    if conn is None:  # closed between being handed out and now
        yield from self.handle_protocol_error(ResponseProtocolError(self.stream_id, "gateway connection closed", ErrorCode.CONNECT_FAILED))
        return False
    conn.flows.append(self.flow)
    return True


def install(serve: Server, claim: Claim) -> None:
    """Answer the flows ``claim`` picks with ``serve`` (one gateway per process, as ``ctx`` is)."""
    global _server, _claim
    proxy_server.asyncio = _Asyncio()  # type: ignore[attr-defined]
    HttpStream.make_server_connection = _make_server_connection  # type: ignore[method-assign]
    _server, _claim = serve, claim


def uninstall() -> None:
    """Stop claiming flows (the patches stay: without a gateway they change nothing)."""
    global _server, _claim
    _server = _claim = None
    for conn in list(_live.values()):
        conn.close()


def is_virtual(server: Any) -> bool:
    address = getattr(server, "address", None)
    return bool(address) and address[0] == VIRTUAL_HOST
