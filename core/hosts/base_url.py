"""Base-URL connections: HTTP/1 requests addressed to our own listener, served as mitmproxy flows
without mitmproxy's connection layer stack.

A client whose base URL is this proxy sends plain HTTP/1.1 in origin form (``POST /v1/...``). For
those requests mitmproxy's sans-io layer stack (about 75 nested event handlers, a command object
and a hook task per step, a virtual server connection) was most of what a call cost. Here the
listener's own connection task reads such requests with mitmproxy's HTTP/1 parser, makes each one
an ``HTTPFlow`` and runs the same lifecycle mitmproxy's ``HttpStream`` runs — ``requestheaders``,
``request``, ``responseheaders``, ``response`` (or ``error``), each followed by ``update`` and a wait
while the flow is intercepted, the same kill checks between them — then hands the flow to the
gateway, whose answer goes to the client as it is written. Every addon sees, changes, intercepts
and kills these flows as it would any other; mitmdump prints them; ``-w`` saves them.

Anything else takes mitmproxy's own path, decided before any hook has seen the request, by handing
the connection (with the bytes read so far) to mitmproxy's handler: CONNECT and absolute-form
requests (proxy clients), TLS, HTTP/2, protocol upgrades (WebSocket), requests for another host,
and anything that does not parse or validate (mitmproxy answers those with its own errors).

It reads mitmproxy's internals (the connection handler, the HTTP/1 parser and body readers), so like
core/hosts/dispatch.py it installs only on the mitmproxy versions it was proven on.

Not replicated for these connections: the ``next_layer`` hook (there is only one layer),
``body_size_limit``/``stream_large_bodies`` (``server.max_body_size`` bounds our bodies), request
trailers and streamed request bodies (a turn needs the whole body).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from h11 import Data as BodyData
from h11._receivebuffer import ReceiveBuffer
from mitmproxy import connection, ctx, http
from mitmproxy import flow as mflow
from mitmproxy.net.http import http1, url
from mitmproxy.proxy import mode_specs, server_hooks
from mitmproxy.proxy.layers.http import HTTPMode, validate_request
from mitmproxy.proxy.layers.http import _hooks as http_hooks
from mitmproxy.proxy.layers.http._http1 import make_body_reader, make_error_response
from mitmproxy.proxy.mode_servers import ProxyConnectionHandler
from mitmproxy.proxy.server import ConnectionHandler
from mitmproxy.utils import human
from mitmproxy.version import VERSION

from core.gateway.sink import Headers
from core.hosts.dispatch import PROVEN_VERSIONS
from core.hosts.flows import TOO_LARGE
from core.hosts.virtual import HIGH_WATER, VIRTUAL_HOST, reply_response, stream_response
from core.protocols.base import Reply

logger = logging.getLogger(__name__)
server_logger = logging.getLogger("mitmproxy.proxy.server")  # "client connect" lines, as mitmproxy logs them

MAX_HEAD = 256 * 1024  # a longer request head goes to mitmproxy's own path
_READ = 65536
_BLANK_LINE = re.compile(rb"\n\r?\n", re.MULTILINE)

Claim = Callable[[http.HTTPFlow], bool]
Serve = Callable[[http.HTTPFlow, "ClientAnswer"], Awaitable[None]]


class Gateway:
    """What a base-URL connection needs from the addon: which flows are ours, who answers them,
    and the largest request body it holds (``server.max_body_size``)."""

    def __init__(self, claims: Claim, serve: Serve, max_body: int) -> None:
        self.claims = claims
        self.serve = serve
        self.max_body = max_body


_gateway: Gateway | None = None
def _mitmproxys_handle_client(handler: ProxyConnectionHandler) -> Any:
    """mitmproxy's own ``handle_client``, looked up when called (tests and addons may replace it)."""
    return ConnectionHandler.handle_client(handler)


class _SkipOnce:
    """Stands in for one of mitmproxy's handler methods until it has swallowed the first call
    that ``matches`` (what this path already did for the connection), then calls through."""

    def __init__(self, method: Callable[..., Any], matches: Callable[..., bool], skipped: Any = None) -> None:
        self.method, self.matches, self.skipped, self.done = method, matches, skipped, False

    def __call__(self, *args: Any) -> Any:
        if not self.done and self.matches(*args):
            self.done = True
            return self.skipped() if self.skipped is not None else None
        return self.method(*args)


async def _done() -> None:
    """An awaitable that does nothing: a skipped ``handle_hook``."""


class _HandOff(Exception):
    """This request (and the rest of the connection) goes to mitmproxy's own handler."""


def _killed(flow: mflow.Flow) -> bool:
    return flow.error is not None and flow.error.msg == mflow.Error.KILLED_MESSAGE


class BaseUrlConnection:
    """One client connection served as flows, request after request (keep-alive, pipelined)."""

    def __init__(self, handler: ProxyConnectionHandler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 gateway: Gateway) -> None:
        self.handler = handler  # mitmproxy's, registered with the proxy server; it takes over on a hand-off
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.gateway = gateway
        self.buf = bytearray()
        self.client = handler.client
        # One in-memory server connection per client connection, as mitmproxy reuses one for HTTP/1.
        self.server = connection.Server(address=(VIRTUAL_HOST, 1), peername=(VIRTUAL_HOST, 1), sockname=("127.0.0.1", 0))
        self.server_announced = False
        self.client_gone = False
        self.closed_here = False  # we closed the connection: its loss is not the client leaving
        self.serving: asyncio.Task[Any] | None = None  # set while a flow is answered
        self.in_call = False  # from a request's head to its answer's end (hooks, intercepts included)
        self.last_activity = time.monotonic()
        self._idle: asyncio.TimerHandle | None = None
        closed = getattr(writer._protocol, "_closed", None)
        if isinstance(closed, asyncio.Future):
            closed.add_done_callback(self._connection_lost)

    # --- the connection --------------------------------------------------------------------------

    async def serve(self) -> None:
        """Serve requests until the client leaves, or hand the connection to mitmproxy. The
        connection is announced at once, as mitmproxy announces it (``client_connected`` may
        refuse it); a hand-off keeps that one announcement and its ``client_disconnected``."""
        if not await self._connected():
            return
        handed_off = False
        try:
            while True:
                head = await self._read_head()
                if head is None:
                    return
                flow, body_size = self._flow(*head)
                self.in_call = True
                try:
                    if not await self._exchange(flow, body_size):
                        return
                finally:
                    self.in_call = False
                    self.last_activity = time.monotonic()
        except _HandOff:
            handed_off = True
            await self._hand_off()
        finally:
            if self._idle is not None:
                self._idle.cancel()
            if not handed_off:
                self.writer.close()
                await self._disconnected()

    async def _hand_off(self) -> None:
        reader = self.reader
        reader._buffer[0:0] = self.buf
        self.buf = bytearray()
        if self.server_announced:  # our in-memory server connection ends; mitmproxy opens its own
            await self._server_disconnected()
        # mitmproxy's handler announces the client itself: that was done here already.
        handler = self.handler
        handler.log = _SkipOnce(handler.log, lambda message, *_: message == "client connect")  # type: ignore[method-assign]
        handler.handle_hook = _SkipOnce(handler.handle_hook,  # type: ignore[method-assign]
                                        lambda hook: isinstance(hook, server_hooks.ClientConnectedHook), skipped=_done)
        await _mitmproxys_handle_client(handler)

    async def _connected(self) -> bool:
        client = self.client
        server_logger.info("client connect", extra={"client": client.peername})
        await ctx.master.addons.handle_lifecycle(server_hooks.ClientConnectedHook(client))
        if client.error:
            server_logger.info("client kill connection", extra={"client": client.peername})
            self.close(abort=True)
            self.closed_here = True
            await self._disconnected()
            return False
        self._idle = asyncio.get_running_loop().call_later(ctx.options.tcp_timeout, self._check_idle)
        return True

    async def _server_disconnected(self) -> None:
        self.server_announced = False
        server, client = self.server, self.client
        server.timestamp_end = time.time()
        server.state = connection.ConnectionState.CLOSED
        server_logger.info(f"server disconnect {human.format_address(server.address)}", extra={"client": client.peername})
        await ctx.master.addons.handle_lifecycle(server_hooks.ServerDisconnectedHook(server_hooks.ServerConnectionHookData(server, client)))

    async def _disconnected(self) -> None:
        if self.server_announced:
            await self._server_disconnected()
        client = self.client
        server_logger.info("client disconnect", extra={"client": client.peername})
        client.timestamp_end = time.time()
        client.state = connection.ConnectionState.CLOSED
        await ctx.master.addons.handle_lifecycle(server_hooks.ClientDisconnectedHook(client))

    async def _server_connected(self) -> None:
        """The in-memory server connection opens, with the hooks mitmproxy runs for a real one."""
        self.server_announced = True
        server = self.server
        data = server_hooks.ServerConnectionHookData(server, self.client)
        await ctx.master.addons.handle_lifecycle(server_hooks.ServerConnectHook(data))
        server.timestamp_start = server.timestamp_tcp_setup = time.time()
        server.state = connection.ConnectionState.OPEN
        server_logger.info(f"server connect {human.format_address(server.address)}", extra={"client": self.client.peername})
        await ctx.master.addons.handle_lifecycle(server_hooks.ServerConnectedHook(data))

    async def server_event(self, event: Any) -> None:
        """mitmproxy injects events (WebSocket messages, TCP data) into its own handlers only."""
        logger.warning("cannot inject %s into a base-URL connection", type(event).__name__)

    def _connection_lost(self, _closed: asyncio.Future[None]) -> None:
        self.client_gone = True
        if self.serving is not None and not self.closed_here:
            self.serving.cancel()

    def close(self, abort: bool = False) -> None:
        self.closed_here = True
        if abort:
            self.transport.abort()
        else:
            self.transport.close()

    def _check_idle(self) -> None:
        """mitmproxy closes a connection silent for ``tcp_timeout``; so do we (one timer, moved lazily)."""
        timeout = ctx.options.tcp_timeout
        idle = time.monotonic() - self.last_activity
        if not self.in_call and idle >= timeout:
            server_logger.info("Closing connection due to inactivity: %s", self.client, extra={"client": self.client.peername})
            self.close()
            return
        self._idle = asyncio.get_running_loop().call_later(max(timeout - idle, 1.0), self._check_idle)

    # --- reading ---------------------------------------------------------------------------------

    async def _more(self) -> bool:
        data = await self.reader.read(_READ)
        if not data:
            return False
        self.buf += data
        self.last_activity = time.monotonic()
        return True

    async def _read_head(self) -> tuple[list[bytes], int] | None:
        """The next request head's lines and where it ends in the buffer; None when the client
        closed between requests."""
        while True:
            while self.buf[:2] == b"\r\n" or self.buf[:1] == b"\n":  # blank lines before a request are ignored
                del self.buf[: 2 if self.buf[:1] == b"\r" else 1]
            if self.buf and not self.buf[:1].isalpha():
                raise _HandOff  # TLS, binary: not an HTTP/1 request head
            match = _BLANK_LINE.search(self.buf)
            if match is not None:
                break
            if len(self.buf) > MAX_HEAD:
                raise _HandOff
            if not await self._more():
                if self.buf.strip():
                    raise _HandOff  # mitmproxy logs the incomplete head as it always does
                return None
        lines = bytes(self.buf[: match.end()]).split(b"\n")
        return [line[:-1] if line.endswith(b"\r") else line for line in lines[:-2]], match.end()

    def _flow(self, lines: list[bytes], head_end: int) -> tuple[http.HTTPFlow, int | None]:
        """The request as a flow, and its body's size as the head frames it (None: chunked), if it
        is one for this path; else the connection is handed off (nothing has seen the request yet)."""
        try:
            request = http1.read_request_head(lines)
            body_size = http1.expected_http_body_size(request)
        except ValueError:
            raise _HandOff from None
        if (request.method in ("CONNECT", "PRI") or request.authority or request.scheme or not request.http_version.startswith("HTTP/1")
                or "upgrade" in request.headers or body_size == -1):
            raise _HandOff
        try:
            host, port = url.parse_authority(request.host_header or "", check=True)
        except ValueError:
            raise _HandOff from None
        request.data.host, request.data.port, request.data.scheme = host, port or 80, b"http"
        request.timestamp_start = time.time()
        flow = http.HTTPFlow(self.client, self.server)
        flow.request = request
        if not self.gateway.claims(flow) or validate_request(HTTPMode.regular, request, ctx.options.validate_inbound_headers):
            raise _HandOff
        del self.buf[:head_end]
        flow.live = True
        return flow, body_size

    async def _read_body(self, flow: http.HTTPFlow, size: int | None, keep: bool) -> bytes | None:
        """The request body (chunked or sized); None if the client left first. A body that grows
        past the gateway's limit (chunked: no length to judge it by up front) is read to its end
        and dropped, and the flow marked as mitmproxy's path marks one whose length says so."""
        if size == 0:
            return b""
        limit, held = self.gateway.max_body, 0
        body_reader = make_body_reader(size)
        pending = ReceiveBuffer()
        pending += self.buf
        self.buf.clear()
        parts: list[bytes] = []
        while True:
            event = body_reader(pending)
            if event is None:
                data = await self.reader.read(_READ)
                if not data:
                    return None
                pending += data
                self.last_activity = time.monotonic()
            elif isinstance(event, BodyData):
                if keep:
                    held += len(event.data)
                    if held > limit:
                        keep = False
                        parts.clear()
                        flow.metadata[TOO_LARGE] = held
                    else:
                        parts.append(bytes(event.data))
                elif TOO_LARGE in flow.metadata and size is None:
                    flow.metadata[TOO_LARGE] += len(event.data)
            else:
                self.buf += bytes(pending)  # a pipelined next request
                return b"".join(parts)

    # --- one request -----------------------------------------------------------------------------

    async def _hook(self, hook: Any, flow: http.HTTPFlow) -> None:
        await ctx.master.addons.handle_lifecycle(hook)
        if flow.intercepted:
            await flow.wait_for_resume()

    async def _exchange(self, flow: http.HTTPFlow, body_size: int | None) -> bool:
        """Run one flow; whether the connection stays open for the next request."""
        request = flow.request
        await self._hook(http_hooks.HttpRequestHeadersHook(flow), flow)
        if _killed(flow):
            return await self._abort(flow, error_hook=True)
        if request.headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.headers.pop("expect")
        # A body our addon marked too large (``request.stream``) is read and dropped, as mitmproxy
        # would stream it to a server connection that ignores it.
        body = await self._read_body(flow, body_size, keep=not request.stream)
        if body is None:
            return await self._failed(flow, "Client disconnected.")
        request.data.content = body
        request.timestamp_end = time.time()
        await self._hook(http_hooks.HttpRequestHook(flow), flow)
        if _killed(flow):
            return await self._abort(flow, error_hook=True)
        answer = ClientAnswer(self, flow)
        if flow.response is not None:  # set by an addon: the gateway is not asked
            flow.response.timestamp_start = time.time()
            await self._hook(http_hooks.HttpResponseHeadersHook(flow), flow)
            if _killed(flow):
                return await self._abort(flow, error_hook=True)
            await answer.finish(already_streamed=False)
        elif not self.gateway.claims(flow):
            # An addon sent the request elsewhere (map_remote...): this path has no real upstream.
            message = f"codex-proxy does not forward base-URL calls to other hosts ({request.pretty_url})"
            await self._failed(flow, message)
            self.transport.write(make_error_response(502, message))
            self.close()
            return False
        else:
            if not self.server_announced:
                await self._server_connected()
            self.serving = asyncio.current_task()
            try:
                await self.gateway.serve(flow, answer)
            except asyncio.CancelledError:
                if not self.client_gone:
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                return await self._failed(flow, "Client disconnected.")
            finally:
                self.serving = None
            if not answer.finished:  # the gateway gave up mid-answer (and dropped the connection)
                return await self._failed(flow, "the gateway closed the connection")
        return answer.keep_alive and not self.client_gone

    async def _failed(self, flow: http.HTTPFlow, message: str) -> bool:
        """The flow ends in an error (unless it already has one, such as a kill): the error hook,
        no response hook; the connection does not serve another request."""
        if flow.error is None:
            flow.error = mflow.Error(message)
        flow.live = False
        await self._hook(http_hooks.HttpErrorHook(flow), flow)
        return False

    async def _abort(self, flow: http.HTTPFlow, error_hook: bool) -> bool:
        """A killed flow: mitmproxy's ``check_killed`` (the error hook, the client connection closed)."""
        if error_hook:
            await self._hook(http_hooks.HttpErrorHook(flow), flow)
        flow.live = False
        self.close()
        return False


class ClientAnswer:
    """The gateway's sink for a base-URL flow: the answer's head and body pass through the flow's
    ``responseheaders``/``response`` hooks, as mitmproxy's ``HttpStream`` passes them, and go to
    the client as they are written (chunked) when the response is streamed."""

    __slots__ = ("_body", "_chunked", "_done", "_head_only", "_store", "_stream", "conn", "flow", "keep_alive", "started")

    def __init__(self, conn: BaseUrlConnection, flow: http.HTTPFlow) -> None:
        self.conn = conn
        self.flow = flow
        self.started = False
        self.keep_alive = False
        self._stream: Any = False  # the response's ``stream`` after responseheaders: False, True or a callable
        self._chunked = False
        self._store = False
        self._body: list[bytes] = []
        self._done = False
        self._head_only = flow.request.method == "HEAD"

    @property
    def client_gone(self) -> bool:
        return self.conn.client_gone

    @property
    def finished(self) -> bool:
        return self._done

    def abort(self) -> None:
        """Drop the connection mid-answer (the gateway failed after the head went out)."""
        self.conn.close(abort=True)

    async def _headers(self, response: http.Response, end_stream: bool) -> bool:
        """The ``responseheaders`` hook; False if the flow was killed there."""
        self.started = True
        flow = self.flow
        flow.response = response
        await self.conn._hook(http_hooks.HttpResponseHeadersHook(flow), flow)
        if _killed(flow):
            await self.conn._abort(flow, error_hook=True)
            self._done = True
            return False
        response = flow.response
        if response.stream and not end_stream:
            self._stream = response.stream
            self._store = ctx.options.store_streamed_bodies
            self._chunked = "chunked" in response.headers.get("transfer-encoding", "").lower()
            self.conn.transport.write(http1.assemble_response_head(response))
        return True

    async def reply(self, reply: Reply) -> None:
        response, body_follows = reply_response(reply, self._head_only)
        if not await self._headers(response, end_stream=not body_follows):
            return
        if self._stream:
            if body_follows:
                await self.write(reply.body)
            await self.end()
        else:
            if body_follows:
                self.flow.response.data.content = reply.body  # type: ignore[union-attr]
            await self.finish(already_streamed=False)

    async def start(self, status: int, headers: Headers) -> None:
        response, body_follows = stream_response(status, headers, self._head_only)
        await self._headers(response, end_stream=not body_follows)

    async def write(self, data: bytes) -> None:
        if self._done or not data:
            return
        stream = self._stream
        if not stream:
            self._body.append(data)
            return
        if stream is True and not self._store:  # the common case: one chunk as it came
            self._send(data)
        else:
            self._emit(stream(data) if callable(stream) else data)
        transport = self.conn.transport
        if transport.get_write_buffer_size() > HIGH_WATER and not self.conn.client_gone:
            await self.conn.writer.drain()

    def _emit(self, chunks: bytes | Iterable[bytes]) -> None:
        """What a ``stream`` callable returned (bytes or several chunks): kept if asked, then sent."""
        for chunk in (chunks,) if isinstance(chunks, bytes) else chunks:
            if self._store:
                self._body.append(chunk)
            self._send(chunk)

    def _send(self, chunk: bytes) -> None:
        if chunk and not self._head_only:
            self.conn.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if self._chunked else chunk)

    async def end(self) -> None:
        if self._done:
            return
        stream = self._stream
        if not stream:
            if self.flow.response is not None and self._body:
                self.flow.response.data.content = b"".join(self._body)
                self._body.clear()
            await self.finish(already_streamed=False)
            return
        if callable(stream):
            tail = stream(b"")
            self._emit(() if tail == b"" else tail)
        if self._store and self.flow.response is not None:
            self.flow.response.data.content = b"".join(self._body)
            self._body.clear()
        await self.finish(already_streamed=True)

    async def finish(self, already_streamed: bool) -> None:
        """mitmproxy's ``send_response``: the ``response`` hook, then what is left to send."""
        if self._done:
            return
        self._done = True
        flow, conn = self.flow, self.conn
        response = flow.response
        assert response is not None
        response.timestamp_end = time.time()
        await conn._hook(http_hooks.HttpResponseHook(flow), flow)
        if _killed(flow):
            await conn._abort(flow, error_hook=False)
            return
        response = flow.response
        request = flow.request
        if not already_streamed:
            conn.transport.write(http1.assemble_response_head(response))
            if (content := response.raw_content) and request.method != "HEAD":
                conn.transport.write(content)
        elif self._chunked and request.method != "HEAD":
            conn.transport.write(b"0\r\n\r\n")
        flow.live = False
        try:
            eof_framing = http1.expected_http_body_size(request, response) == -1
        except ValueError:
            eof_framing = False
        self.keep_alive = not (eof_framing or http1.connection_close(request.http_version, request.headers)
                               or http1.connection_close(response.http_version, response.headers))
        if not self.keep_alive:
            conn.close()

    def switch_protocols(self, headers: Headers) -> Any:
        raise RuntimeError("protocol upgrades take mitmproxy's own path")  # _flow hands them off


async def _handle_client(self: ProxyConnectionHandler) -> None:
    gateway = _gateway
    io = self.transports[self.client]
    if gateway is None or not isinstance(self.client.proxy_mode, mode_specs.RegularMode) or not isinstance(io.reader, asyncio.StreamReader):
        return await _mitmproxys_handle_client(self)
    await BaseUrlConnection(self, io.reader, io.writer, gateway).serve()  # type: ignore[arg-type]


def install(claims: Claim, serve: Serve, max_body: int) -> bool:
    """Serve base-URL connections on every regular-mode listener as flows, through ``serve``;
    False (every connection on mitmproxy's own path) on a mitmproxy version this was not proven on."""
    global _gateway
    if VERSION not in PROVEN_VERSIONS:
        return False
    _gateway = Gateway(claims, serve, max_body)
    ProxyConnectionHandler.handle_client = _handle_client  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    global _gateway
    _gateway = None


__all__ = ["BaseUrlConnection", "ClientAnswer", "install", "uninstall"]
