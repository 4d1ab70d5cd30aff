"""Framing shared by the SSE and WebSocket transports: error bodies, SSE frames, event pacing."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from codex_fake.scenarios import Disconnect, Pause
from codex_fake.turn import Turn
from codex_fake.validation import ApiError

DISCONNECTS = (ConnectionError, ClientConnectionResetError)
_EVENT_PREFIX: dict[str, bytes] = {}


def request_id() -> str:
    return f"req_{secrets.token_hex(16)}"


def error_response(err: ApiError, extra: dict[str, str] | None = None) -> web.Response:
    """A non-2xx answer shaped like the backend's (JSON, HTML, or the empty-bodied 404)."""
    headers = {"x-request-id": request_id()}
    for source in (extra or {}, err.headers):
        headers.update((str(k).lower(), str(v)) for k, v in source.items())
    body = err.body
    if isinstance(body, (dict, list)):
        headers.setdefault("content-type", "application/json")
        return web.Response(status=err.status, body=orjson.dumps(body), headers=headers)
    text = "" if body is None else str(body)
    if text and "content-type" not in headers:
        headers["content-type"] = "text/html; charset=utf-8" if text.lstrip().startswith("<") else "text/plain"
    return web.Response(status=err.status, body=text.encode(), headers=headers)


def sse_frame(event: dict[str, Any]) -> bytes:
    """``event: <type>\\ndata: <json>\\n\\n`` in one buffer."""
    kind = event["type"]
    prefix = _EVENT_PREFIX.get(kind)
    if prefix is None:
        prefix = _EVENT_PREFIX[kind] = f"event: {kind}\ndata: ".encode()
    return prefix + orjson.dumps(event) + b"\n\n"


def http_error_of(spec: dict[str, Any]) -> ApiError:
    return ApiError(int(spec.get("status", 500)), spec.get("body", ""), dict(spec.get("headers") or {}))


async def pump(turn: Turn, send: Callable[[dict[str, Any]], Awaitable[None]]) -> Disconnect | None:
    """Feed a turn's events to a transport; returns a scripted Disconnect, if any.

    Pacing follows an absolute schedule (event k at start + k * delay) so that time spent writing
    does not accumulate as drift: a benchmark can rely on ``events * event_delay_ms``.
    """
    delay = turn.event_delay
    loop = asyncio.get_running_loop()
    due: float | None = None  # when the next event may go out; None: immediately
    for event in turn.events():
        if isinstance(event, Pause):
            await asyncio.sleep(event.seconds)
            due = None
            continue
        if isinstance(event, Disconnect):
            return event
        if delay:
            now = loop.time()
            if due is None:
                due = now
            elif due > now:
                await asyncio.sleep(due - now)
            due += delay
        if turn.stamp_events and event["type"] == "response.output_text.delta":
            # Stamped at the moment of sending, so a client on this machine can measure per-event latency.
            event = {**event, "delta": f"{time.monotonic_ns():020d}"}
        await send(event)
    return None
