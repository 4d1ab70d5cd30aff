"""``WS /backend-api/codex/responses``: the backend's WebSocket transport for turns.

One ``response.create`` frame per turn, one JSON text frame per event, ``codex.rate_limits``
(the account's quota, as the HTTP answer's ``x-codex-*`` headers carry it) before
``response.created``, one turn in flight per socket, and ``previous_response_id`` resolving only
against responses this very socket produced. The 101 carries the rate-limit headers and, like
any answer behind Cloudflare, its cookies.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from codex_fake.catalog import catalog
from codex_fake.host import Caller, Host
from codex_fake.validation import ApiError, check_responses_body, detail
from codex_fake.faults import answered_by_cloudflare
from codex_fake.wire import error_response, http_error_of, pump, request_id

BETA = "responses_websockets=2026-02-06"


def error_frame(err: ApiError) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "status": err.status, "error": err.error_object()}
    if err.headers:
        frame["headers"] = err.headers
    return frame


class Socket:
    """One upgraded connection: its own response history and at most one running turn."""

    def __init__(self, fake: Host, request: web.Request, ws: web.WebSocketResponse, caller: Caller) -> None:
        self.fake = fake
        self.request = request
        self.ws = ws
        self.caller = caller
        self.history: dict[str, list[Any]] = {}  # response id -> the whole conversation after it
        self.active: asyncio.Task[None] | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_frame(orjson.dumps(frame), WSMsgType.TEXT)

    async def on_text(self, data: str) -> None:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            await self.send(error_frame(detail(400, "Invalid JSON frame")))
            return
        if not isinstance(frame, dict) or frame.get("type") != "response.create":
            kind = frame.get("type") if isinstance(frame, dict) else None
            err = ApiError(400, {"error": {"type": "invalid_request_error", "code": "unknown_event_type",
                                           "message": f"Unsupported event type: {kind!r}", "param": "type"}})  # fmt: skip
            await self.send(error_frame(err))
            return
        if self.active is not None and not self.active.done():
            err = ApiError(400, {"error": {"type": "invalid_request_error", "code": "response_in_progress",
                                           "message": "A response is already in progress on this connection.",
                                           "param": None}})  # fmt: skip
            await self.send(error_frame(err))
            return
        self.active = asyncio.ensure_future(self.turn(frame, data.encode()))

    async def turn(self, frame: dict[str, Any], raw: bytes) -> None:
        fake, state = self.fake, self.fake.state
        state.stats.requests += 1
        entry = fake.record(self.request, raw, frame, self.caller.account, method="WS")
        prev_id = frame.get("previous_response_id")
        history: list[Any] = []
        if prev_id is not None:
            found = self.history.get(prev_id)
            if found is None:
                err = ApiError(400, {"error": {"type": "invalid_request_error", "code": "previous_response_not_found",
                                               "message": f"Previous response with id '{prev_id}' not found.",
                                               "param": "previous_response_id"}})  # fmt: skip
                await self.send(error_frame(err))
                return
            history = found
        cfg = state.config
        try:
            checked = check_responses_body(
                frame, account=self.caller.account, plan=self.caller.plan, websocket=True, history=history,
                require_instructions=cfg.require_instructions, system_role=cfg.system_role,
            )  # fmt: skip
        except ApiError as err:
            await self.send(error_frame(err))
            return
        if checked.notes and entry is not None:
            entry["notes"].extend(checked.notes)
        turn = fake.build_turn(frame, checked, self.caller, fake.pick_scenario(self.caller, websocket=True), prev_id)
        stats = state.stats  # a reset() during the turn must not skew the new counters
        stats.streams_open += 1
        try:
            if turn.ttfb:
                await asyncio.sleep(turn.ttfb)
            if turn.http_error is not None:
                spec = turn.http_error
                err = ApiError(int(spec.get("status", 500)), spec.get("body", ""), dict(spec.get("headers") or {}))
                await self.send(error_frame(err))
                stats.completed_streams += 1
                return
            if turn.json_body is not None:
                await self.send(turn.json_body)
                stats.completed_streams += 1
                return
            await self.send(state.usage_for(self.caller.account).ws_event(self.caller.plan))
            ending = await pump(turn, self.send)
            stats.completed_streams += 1
            if ending is not None:
                if ending.mode == "eof":
                    await self.ws.close(code=1000, message=b"stream ended")
                elif self.request.transport is not None:
                    self.request.transport.abort()
                return
            if turn.status in ("completed", "incomplete"):
                self.history[turn.req.response_id] = history + checked.input + turn.output_items
        except asyncio.CancelledError:
            stats.aborted_streams += 1
            raise
        except (ConnectionError, RuntimeError):
            stats.aborted_streams += 1
        finally:
            stats.streams_open -= 1


def drop(sockets: set[Socket], account: str | None) -> int:
    """Cut connections without a close frame (what a network failure looks like to the client)."""
    cut = [s for s in sockets if account is None or s.caller.account == account]
    for sock in cut:
        if sock.request.transport is not None:
            sock.request.transport.abort()
    return len(cut)


async def handle(fake: Host, request: web.Request, sockets: set[Socket]) -> web.StreamResponse:
    """Check auth and the beta header on the handshake, then serve turns until the socket closes."""
    fake.state.stats.requests += 1
    try:
        caller = fake.authenticate(request)
    except ApiError as err:
        fake.record(request, b"", None, None)
        return error_response(err)
    fake.record(request, b"", None, caller.account)
    if refusal := fake.state.config.websocket_refusal:
        return error_response(detail(refusal, "WebSocket upgrades are not available"))
    if (blocked := fake.state.peek_fault(caller.account)) is not None and answered_by_cloudflare(blocked):
        # Cloudflare blocks the upgrade as it blocks any request; the turn the client then sends
        # over HTTP meets the same answer (and counts as the fault's use).
        return error_response(http_error_of(blocked["http_error"]))
    if BETA not in request.headers.get("OpenAI-Beta", ""):
        return error_response(detail(400, f"WebSocket connections require the OpenAI-Beta: {BETA} header"))
    ws = web.WebSocketResponse(max_msg_size=128 * 1024 * 1024, compress=False, autoping=True)
    if not ws.can_prepare(request).ok:
        return error_response(detail(426, "Upgrade to WebSocket required"))
    ws.headers.update(fake.state.usage_for(caller.account).headers())
    ws.headers["x-codex-turn-state"] = request.headers.get("x-codex-turn-state") or f"ts_{secrets.token_hex(16)}"
    ws.headers["x-models-etag"] = catalog().etag
    ws.headers["x-reasoning-included"] = "true"
    ws.headers["x-request-id"] = request_id()
    fake.set_cloudflare_cookies(ws, caller, request)
    await ws.prepare(request)
    sock = Socket(fake, request, ws, caller)
    stats = fake.state.stats
    stats.websocket_upgrades += 1
    stats.websockets_open += 1
    sockets.add(sock)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await sock.on_text(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await sock.send(error_frame(detail(400, "Binary frames are not supported")))
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        sockets.discard(sock)
        stats.websockets_open -= 1
        if sock.active is not None and not sock.active.done():
            sock.active.cancel()
            try:
                await sock.active
            except (asyncio.CancelledError, Exception):
                pass
    return ws
