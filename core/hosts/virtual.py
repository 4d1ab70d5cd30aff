"""The gateway as the upstream server of the flows it answers, inside mitmproxy's own process.

An addon cannot stream a response it makes up itself: one set in the ``request`` hook goes to the
client whole; only a body read from a server connection can be streamed. So a flow the
gateway answers goes upstream like any other flow: after every addon's ``request`` hook ran and an
intercepted flow was resumed, mitmproxy asks for a server connection, and for our flows it gets a
*virtual* one: no socket, a pair of in-memory buffers. the gateway reads the request off the flow
(whatever addons and mitmweb edits made of it) and answers with the HTTP events a server
connection would have produced, which mitmproxy streams to the client through the usual
``responseheaders``/``response`` hooks. Everything in mitmproxy after the ``request`` hook works as
for a real upstream: the dumper's line, ``-w``, mitmweb's live view, ``store_streamed_bodies``,
other addons' ``stream`` callables, kills (core/hosts/addon.py watches for them).

Three narrow patches make this work (mitmproxy 12.3; checked by tests/unit/test_virtual.py):
``HttpStream.make_server_connection`` asks for a connection to ``(VIRTUAL_HOST, n)`` when the
gateway claims the flow, the ``asyncio`` that mitmproxy's connection handler opens connections
with answers that host with a ``VirtualConnection``, and ``HttpClient`` speaks to it through
``VirtualHttpClient`` instead of HTTP/1. HTTP/1 clients reuse one virtual connection
for their keep-alive requests, as they would a real server's; HTTP/2 streams get one each, so
mitmproxy's limit of five connections per address never makes a stream wait.

A ``101 Switching Protocols`` answer (``Answer.switch_protocols``) turns the connection into a
tunnel, as a real server's would: mitmproxy's WebSocket layer then relays frames, the bytes it sends
us arrive through ``from_client``/``read_client`` and ours go back as response data
(core/hosts/websocket.py frames them).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from mitmproxy import http
from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy import server as proxy_server
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http import (
    ErrorCode,
    GetHttpConnection,
    HttpClient,
    HttpStream,
    RegisterHttpConnection,
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    RequestProtocolError,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._base import HttpConnection, ReceiveHttp

from core.gateway.sink import Headers
from core.protocols.base import Reply

logger = logging.getLogger(__name__)

VIRTUAL_HOST = "codex-gateway.invalid"  # never resolved: ``.invalid`` cannot exist in DNS
HIGH_WATER = 256 * 1024  # bytes the gateway may get ahead of mitmproxy before it waits
_H1_PORT = 1  # one reusable address per HTTP/1 client connection

Server = Callable[[http.HTTPFlow, "VirtualConnection"], Awaitable[None]]
Claim = Callable[[http.HTTPFlow], bool]


class VirtualConnection:
    """Both ends of one in-memory server connection. mitmproxy drives it through the
    StreamReader/StreamWriter methods its connection handler uses; the gateway queues the answer
    as HTTP events (``push``), which ``VirtualHttpClient`` hands to mitmproxy's HTTP layer as they
    are: no HTTP/1 is written or parsed on this side."""

    __slots__ = ("id", "peer", "flows", "_items", "_buffered", "_eof", "_reader", "_writable", "closed", "tasks", "_serve",
                 "_inbound", "_inbound_eof", "_inbound_waiter")

    def __init__(self, conn_id: int, serve: Server) -> None:
        self.id = conn_id
        self.peer = (VIRTUAL_HOST, conn_id)
        self.flows: collections.deque[http.HTTPFlow] = collections.deque()  # assigned, not yet answered
        self._items: collections.deque[Answered] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._reader: asyncio.Future[None] | None = None  # mitmproxy waiting for the answer
        self._writable: asyncio.Future[None] | None = None  # the gateway waiting for mitmproxy to catch up
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()
        self._serve = serve
        # After a protocol upgrade (WebSocket): the bytes mitmproxy relays from the client.
        self._inbound: collections.deque[bytes] = collections.deque()
        self._inbound_eof = False
        self._inbound_waiter: asyncio.Future[None] | None = None

    # --- the StreamWriter side: mitmproxy sends a request ----------------------------------------

    def write(self, data: bytes) -> None:
        # VirtualHttpClient writes one byte when a request's head goes out: the flow holds the
        # request itself. HTTP sends a request on a connection only once the previous answer has
        # been read whole, so answers never overlap on one connection.
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
        self.client_eof()
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

    # --- the StreamReader side: mitmproxy learns that answers are waiting ------------------------

    async def read(self, n: int = -1) -> bytes:
        while not self._items:
            if self._eof:
                return b""
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        return b"\x00"  # a wake-up; VirtualHttpClient takes() the answer itself

    def take(self) -> list[Answered]:
        items = list(self._items)
        self._items.clear()
        self._buffered = 0
        self._wake_writer()
        return items

    # --- the gateway's side ----------------------------------------------------------------------

    def push(self, item: Answered, size: int = 0) -> None:
        if self.closed:
            return
        self._items.append(item)
        self._buffered += size
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

    # --- after an upgrade: the client's side of the tunnel ---------------------------------------

    def from_client(self, data: bytes) -> None:
        """Bytes mitmproxy relays from the client once the connection was upgraded (the
        WebSocket frames its WebSocket layer sent on, after every addon's hook)."""
        if data and not self._inbound_eof:
            self._inbound.append(data)
            self._wake_inbound()

    def client_eof(self) -> None:
        self._inbound_eof = True
        self._wake_inbound()

    async def read_client(self) -> bytes:
        """The next bytes from the client; ``b""`` once it is gone."""
        while not self._inbound:
            if self._inbound_eof:
                return b""
            self._inbound_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._inbound_waiter
            finally:
                self._inbound_waiter = None
        return self._inbound.popleft()

    def _wake_inbound(self) -> None:
        if self._inbound_waiter is not None and not self._inbound_waiter.done():
            self._inbound_waiter.set_result(None)


# What the gateway queues: the answer's head (and whether a body follows), a body chunk, its end.
Answered = tuple[http.Response, bool] | bytes | None


class Answer:
    """An ``Exchange`` sink that answers a flow on its virtual connection: a complete reply (with
    its length, for an HTTP/1 client's keep-alive), or a stream (chunked to an HTTP/1 client)."""

    __slots__ = ("_conn", "_head_only", "_bodiless", "started")

    def __init__(self, conn: VirtualConnection, method: str) -> None:
        self._conn = conn
        self._head_only = method == "HEAD"
        self._bodiless = self._head_only
        self.started = False

    @property
    def client_gone(self) -> bool:
        return self._conn.closed

    def abort(self) -> None:
        """Drop the connection mid-answer (the gateway failed after the head went out)."""
        self._conn.close()

    async def reply(self, reply: Reply) -> None:
        self.started = True
        response, body_follows = reply_response(reply, self._head_only)
        self._conn.push((response, body_follows))
        if body_follows:
            self._conn.push(reply.body, len(reply.body))
        self._conn.push(None)

    async def start(self, status: int, headers: Headers) -> None:
        self.started = True
        response, body_follows = stream_response(status, headers, self._head_only)
        self._bodiless = not body_follows
        self._conn.push((response, body_follows))

    async def write(self, data: bytes) -> None:
        if data and not self._bodiless:
            self._conn.push(data, len(data))
            await self._conn.writable()

    async def end(self) -> None:
        self._conn.push(None)

    def switch_protocols(self, headers: Headers) -> VirtualConnection:
        """Answer ``101 Switching Protocols`` with ``headers`` (``Upgrade``, ``Connection`` and the
        protocol's own) and hand over the connection, which from now on carries that protocol's
        bytes both ways (mitmproxy's WebSocket layer sits on the other end)."""
        self.started = True
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        fields = [(name.encode(), value.encode()) for name, value in pairs]
        response = http.Response(b"HTTP/1.1", 101, reason_phrase(101), http.Headers(fields), None, None, time.time(), None)
        self._conn.push((response, False))
        self._conn.push(None)
        return self._conn


_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
BODILESS = frozenset({204, 304})  # statuses that never carry a body, whatever their headers say


def make_response(status: int, headers: Headers, framing: tuple[bytes, bytes]) -> http.Response:
    """The gateway's answer head as mitmproxy's ``Response``, framed by ``framing`` alone."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    fields = [(name.encode(), value.encode()) for name, value in pairs if name.lower() not in _FRAMING]
    fields.append(framing)
    return http.Response(b"HTTP/1.1", status, reason_phrase(status), http.Headers(fields), None, None, time.time(), None)


def reply_response(reply: Reply, head_only: bool) -> tuple[http.Response, bool]:
    """A complete reply's head, sized (for an HTTP/1 client's keep-alive), and whether its body follows."""
    status, body = reply.status, reply.body
    length = b"0" if status in BODILESS else b"%d" % len(body)
    return make_response(status, reply.headers, (b"content-length", length)), not (status in BODILESS or head_only or not body)


def stream_response(status: int, headers: Headers, head_only: bool) -> tuple[http.Response, bool]:
    """A streamed answer's head (chunked) and whether a body follows. A 204 or 304 has no body
    whatever its headers say: a chunked one would leave the chunk terminator on a keep-alive
    connection, where the client reads it as the next answer."""
    framing = (b"content-length", b"0") if status in BODILESS else (b"transfer-encoding", b"chunked")
    return make_response(status, headers, framing), not (head_only or status in BODILESS)


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class VirtualHttpClient(HttpConnection):
    """mitmproxy's HTTP client layer for a virtual connection: requests go out as a wake-up byte,
    answers come in as the events the gateway queued, with this stream's id."""

    def __init__(self, context: Context) -> None:
        super().__init__(context, context.server)
        self.stream_id: int | None = None
        # A 101 answer turns the connection into a tunnel (mitmproxy's HTTP stream "passthrough"):
        # its end of message is not the end of the stream, and what comes after is raw bytes.
        self.upgrading = False
        self.upgraded = False

    def _conn(self) -> VirtualConnection | None:
        return _live.get(self.conn.peername[1]) if self.conn.peername else None

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, RequestHeaders):
            self.stream_id = event.stream_id
            yield commands.SendData(self.conn, b"\x00")
        elif isinstance(event, events.DataReceived):
            conn = self._conn()
            for item in conn.take() if conn is not None else ():
                if self.stream_id is None:
                    break  # an answer after the stream ended (a killed flow): nobody to give it to
                if item is None:
                    if self.upgrading and not self.upgraded:
                        self.upgraded = True  # the tunnel begins; the stream lives on
                        yield ReceiveHttp(ResponseEndOfMessage(self.stream_id))
                        continue
                    stream_id, self.stream_id = self.stream_id, None
                    yield ReceiveHttp(ResponseEndOfMessage(stream_id))
                elif isinstance(item, bytes):
                    yield ReceiveHttp(ResponseData(self.stream_id, item))
                else:
                    response, body_follows = item
                    self.upgrading = response.status_code == 101
                    yield ReceiveHttp(ResponseHeaders(self.stream_id, response, not body_follows))
        elif isinstance(event, RequestData) and self.upgraded:
            if (conn := self._conn()) is not None:
                conn.from_client(event.data)
        elif isinstance(event, RequestEndOfMessage) and self.upgraded:
            if (conn := self._conn()) is not None:
                conn.client_eof()
        elif isinstance(event, events.ConnectionClosed):
            if self.conn.state & ConnectionState.CAN_WRITE:
                yield commands.CloseConnection(self.conn)
            if self.stream_id is not None:
                stream_id, self.stream_id = self.stream_id, None
                yield ReceiveHttp(ResponseProtocolError(stream_id, "the gateway closed the connection", ErrorCode.GENERIC_SERVER_ERROR))
        elif isinstance(event, RequestProtocolError):
            yield commands.CloseConnection(self.conn)
        # Start, the request's body and its end: the flow already holds them (before an upgrade).


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


_original_client_event = HttpClient._handle_event


def _client_event(self: HttpClient, event: events.Event) -> layer.CommandGenerator[None]:
    """mitmproxy's ``HttpClient``, with ``VirtualHttpClient`` under virtual connections."""
    if not is_virtual(self.context.server):
        return (yield from _original_client_event(self, event))
    err = None if self.context.server.connected else (yield commands.OpenConnection(self.context.server))
    if not err:
        self.child_layer = VirtualHttpClient(self.context)
        self._handle_event = self.child_layer.handle_event  # type: ignore[method-assign]
        yield from self._handle_event(event)
    yield RegisterHttpConnection(self.context.server, err)


def install(serve: Server, claim: Claim) -> None:
    """Answer the flows ``claim`` picks with ``serve`` (one gateway per process, as ``ctx`` is)."""
    global _server, _claim
    proxy_server.asyncio = _Asyncio()  # type: ignore[attr-defined]
    HttpStream.make_server_connection = _make_server_connection  # type: ignore[method-assign]
    HttpClient._handle_event = _client_event  # type: ignore[method-assign]
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
