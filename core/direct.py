"""Base-URL requests served by the front door itself (core/front_door.py), without mitmproxy's
HTTP layer: the same DataPlane, Exchange and translators, answered through aiohttp.

Such a request is not a mitmproxy flow, so where someone is looking — mitmweb's View, a ``-w``
save file, ``codex_record`` — it is mirrored as one (``MirrorFlow``: credentials redacted, run
through the ``response`` lifecycle like any flow, with its upstream legs beside it). Under plain
mitmdump each answered request is one event-log line at ``--set termlog_verbosity=debug``: every
log record, whatever its level, costs mitmproxy a walk over all addons (its deprecated
``add_log`` event, ~0.2 ms — a fifth of a request's CPU), so none is written by default.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from mitmproxy import connection, ctx, hooks, http

from core.bridge import AiohttpSink
from core.gateway.routes import DataPlane, Job, ToControlPlane, is_control_plane_path
from core.gateway.exchange import Exchange
from core.hosts.flows import CLIENT_ADDR_HEADER
from core.hosts.legs import TurnLegs, UpstreamLegs, conclude
from core.protocols.base import ClientRequest, Reply
from core.gateway.redaction import REDACTED, SECRET_QUERY_PARAMS, redact_json, redacted_headers
from core.services import Services

logger = logging.getLogger(__name__)

MIRROR_KEY = "codex.direct"  # flow metadata: a mirror of a request the front door answered itself
MIRROR_BODY_CAP = 8 * 1024 * 1024  # per mirrored answer; BodyBudget trims old flows further
_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"})

Annotator = Callable[[http.HTTPFlow, TurnLegs | None], Callable[[dict[str, Any]], None]]


def _redacted_path(request: web.BaseRequest) -> str:
    if not any(name.lower() in SECRET_QUERY_PARAMS for name in request.query):
        return request.path_qs
    query = "&".join(
        f"{name}={REDACTED if name.lower() in SECRET_QUERY_PARAMS else value}" for name, value in request.query.items()
    )
    return f"{request.path}?{query}"


class MirrorFlow:
    """A direct request shown as a flow: pending at once, complete when the answer is."""

    def __init__(self, request: web.BaseRequest, body: bytes, peer: tuple[str, int], sock: tuple[str, int],
                 pending: set[asyncio.Task[None]]) -> None:
        now = time.time()
        client = connection.Client(peername=peer, sockname=sock, timestamp_start=now)
        flow = http.HTTPFlow(client, connection.Server(address=None))
        shown = redact_json(body) if is_control_plane_path(request.path) else None
        flow.request = http.Request(
            sock[0], sock[1], request.method.encode(), b"http", b"", _redacted_path(request).encode(), b"HTTP/1.1",
            http.Headers([(k.encode(), v.encode()) for k, v in redacted_headers(request.headers.items())]),
            shown if shown is not None else body, None, now, now,
        )
        flow.metadata[MIRROR_KEY] = True
        self.flow = flow
        self._control_plane = is_control_plane_path(request.path)  # its answers may hold tokens (export)
        self._pending = pending
        self._chunks: list[bytes] = []
        self._size = 0
        view = ctx.master.addons.get("view")
        if view is not None:
            view.add([flow])

    def response(self, status: int, headers: Mapping[str, str], body: bytes = b"") -> None:
        kept = [(k, v) for k, v in headers.items() if k.lower() not in _HOP_HEADERS]
        self.flow.response = http.Response.make(status, body, [(k.encode(), v.encode()) for k, v in redacted_headers(kept)])
        ctx.master.addons.trigger(hooks.UpdateHook([self.flow]))

    def data(self, chunk: bytes) -> None:
        if self._size < MIRROR_BODY_CAP:
            self._chunks.append(chunk)
            self._size += len(chunk)

    def end(self, error: str | None = None) -> None:
        flow = self.flow
        if flow.response is not None and self._chunks:
            content = b"".join(self._chunks)
            flow.response.content = (redact_json(content) or content) if self._control_plane else content
        self._chunks = []
        if flow.response is not None:
            flow.response.timestamp_end = time.time()
        elif error is None:
            error = "no answer"
        conclude(flow, error, self._pending)


class MirroringSink(AiohttpSink):
    """Answers the client and keeps the mirror flow in step."""

    def __init__(self, request: web.BaseRequest, mirror: MirrorFlow) -> None:
        super().__init__(request)
        self._mirror = mirror

    async def reply(self, reply: Reply) -> None:
        await super().reply(reply)
        self._mirror.response(reply.status, reply.headers, reply.body)

    async def start(self, status: int, headers: dict[str, str]) -> None:
        await super().start(status, headers)
        self._mirror.response(status, headers)

    async def write(self, data: bytes) -> None:
        await super().write(data)
        self._mirror.data(data)


def _log_line(request: ClientRequest) -> Callable[[dict[str, Any]], None]:
    """mitmdump without a consumer for flows: one event-log line per turn (never a secret)."""

    def log(row: dict[str, Any]) -> None:
        tokens = f" tokens {row['input_tokens']}/{row['output_tokens']}" if row.get("input_tokens") is not None else ""
        logger.info("%s: %s %s << %s %s ttfb=%sms total=%sms%s", request.client_addr, request.method, request.path,
                    row["status"], row["model"], row["ttfb_ms"], row["duration_ms"], tokens)

    return log


class DirectPath:
    """The aiohttp handler behind the front door."""

    def __init__(self, services: Services, data_plane: DataPlane, control_port: int, legs: UpstreamLegs, annotator: Annotator,
                 log_requests: Callable[[], bool]) -> None:
        self._services = services
        self._log_requests = log_requests
        self._data_plane = data_plane
        self._control = f"http://127.0.0.1:{control_port}"
        self._legs = legs
        self._annotator = annotator
        self._pending: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport else None
        sock = transport.get_extra_info("sockname") if transport else None
        client = ClientRequest(request.method, request.path, request.query, request.headers, body, str(peer[0]) if peer else "")
        mirror = MirrorFlow(request, body, peer[:2], sock[:2], self._pending) if self._legs.wanted and peer and sock else None
        try:
            return await self._answer(request, client, body, mirror)
        finally:
            if mirror is not None:
                mirror.end(None if mirror.flow.response is not None else "client went away")

    async def _answer(self, request: web.BaseRequest, client: ClientRequest, body: bytes, mirror: MirrorFlow | None) -> web.StreamResponse:
        outcome = self._data_plane.dispatch(client)
        if isinstance(outcome, ToControlPlane):
            return await self._to_control_plane(request, client, body, mirror)
        sink = MirroringSink(request, mirror) if mirror is not None else AiohttpSink(request)
        if isinstance(outcome, Reply):
            await sink.reply(outcome)
        else:
            assert isinstance(outcome, Job)
            legs = self._legs.tap(mirror.flow, str(self._services.cfg.get("api.base_url") or "")) if mirror is not None else None
            outcome.tap = legs
            if mirror is not None:
                outcome.annotate = self._annotator(mirror.flow, legs)
            elif self._log_requests():
                outcome.annotate = _log_line(client)
            await Exchange(self._services, outcome, sink).run()
        assert sink.response is not None
        return sink.response

    async def _to_control_plane(self, request: web.BaseRequest, client: ClientRequest, body: bytes,
                                mirror: MirrorFlow | None) -> web.StreamResponse:
        """A dashboard or management call on a connection that began with an API call: relayed to
        the Flask app like mitmproxy would, streaming its answer back."""
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS and k.lower() != CLIENT_ADDR_HEADER}
        headers["Host"] = request.host
        headers[CLIENT_ADDR_HEADER] = client.client_addr
        async with self._session.request(request.method, self._control + request.path_qs, headers=headers, data=body,
                                         allow_redirects=False) as upstream:
            kept = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS)  # every Set-Cookie
            response = web.StreamResponse(status=upstream.status, headers=kept)
            await response.prepare(request)
            if mirror is not None:
                mirror.response(upstream.status, kept)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
                if mirror is not None:
                    mirror.data(chunk)
            await response.write_eof()
            return response
