"""Responses over a client's WebSocket (``GET /v1/responses`` upgraded), as the real API serves it.

Codex CLI's built-in provider opens this socket first; answering it saves each turn the seconds of
retries before the client falls back to HTTP. One ``response.create`` text frame per turn, one JSON
text frame per event out (the very events the SSE route sends, without the ``event:`` line), any
number of turns per connection, one at a time. ``previous_response_id`` resolves against responses
this connection produced: the backend keeps nothing (``store: false``), so the connection keeps each
response's whole conversation and sends it in full. ``generate: false`` (Codex's warm-up) answers at
once without calling upstream. Errors before a turn's output are the API's error frames
``{"type": "error", "status", "error", "headers"}``; after it, ``response.failed``.

Host-independent: the host hands in the socket (text in/out, ping, close) and runs each turn's job.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from core.accounts.quota import rate_limits_event
from core.codex.sse import SSEParser
from core.gateway.routes import Job
from core.gateway.sink import Headers
from core.protocols.base import BadRequest, ClientError, Reply, now_seconds, random_id
from core.protocols.openai_chat.errors import error_payload
from core.services import Services

logger = logging.getLogger(__name__)

KEPT_RESPONSES = 16  # conversations a connection can continue from (clients use the last one)
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_RELAYED_ERROR_HEADERS = ("retry-after", "x-codex-active-limit")


class Socket(Protocol):
    async def receive(self) -> str | bytes | None: ...

    async def send_text(self, text: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


Prepare = Callable[[bytes], "Job | Reply"]  # a response.create body → the turn's job, or a refusal
Run = Callable[[Job, "FrameSink", int], Awaitable[None]]  # the host runs the job (the connection's nth turn) into the sink


def error_frame(status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "status": status, "error": error}
    if headers:
        frame["headers"] = headers
    return frame


class FrameSink:
    """An ``Exchange`` sink writing one turn onto the socket: each SSE event the protocol's stream
    translator produced becomes one text frame, a keep-alive comment a ping, a refusal an error
    frame. It remembers the response's id and output items for ``previous_response_id``."""

    def __init__(self, socket: Socket, rate_limits: Callable[[], dict[str, Any]]) -> None:
        self._socket = socket
        self._rate_limits = rate_limits
        self._parser = SSEParser()
        self.started = False
        self.response_id: str | None = None
        self.status: str | None = None  # the terminal response's status
        self.output: list[dict[str, Any]] = []

    async def reply(self, reply: Reply) -> None:
        """A turn refused before any output (turns on a socket are always streamed, so a whole
        reply is an error): the API's error frame, with the headers a client reads from it."""
        self.started = True
        try:
            body = orjson.loads(reply.body) if reply.body else {}
        except orjson.JSONDecodeError:
            body = {}
        error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {"message": reply.body.decode("utf-8", "replace")}
        headers = {k: v for k, v in reply.headers.items() if k.startswith("x-codex-") or k in _RELAYED_ERROR_HEADERS}
        await self._socket.send_text(orjson.dumps(error_frame(reply.status, error, headers)).decode())

    async def start(self, status: int, headers: Headers) -> None:
        self.started = True
        # The backend sends the account's limits before each turn's events; ours are the pool's.
        await self._socket.send_text(orjson.dumps(self._rate_limits()).decode())

    async def write(self, data: bytes) -> None:
        events = self._parser.feed(data)
        if not events and data.lstrip().startswith(b":"):
            await self._socket.ping()  # the SSE keep-alive comment
        for event in events:
            if event.event == "codex.rate_limits":
                continue  # an account's own limits: the pool's were sent
            if event.event in _TERMINAL or event.event in ("response.created", "response.output_item.done"):
                self._observe(event.event, event.data)
            await self._socket.send_text(event.data.decode("utf-8", "replace"))

    async def end(self) -> None:
        pass

    def _observe(self, name: str, raw: bytes) -> None:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if name == "response.output_item.done":
            if isinstance(data.get("item"), dict):
                self.output.append(data["item"])
        elif isinstance(data.get("response"), dict):
            self._remember(name, data["response"])

    def _remember(self, name: str, response: dict[str, Any]) -> None:
        self.response_id = response.get("id") or self.response_id
        if name in _TERMINAL:
            self.status = response.get("status") or name.removeprefix("response.")
            if not self.output and isinstance(response.get("output"), list):
                self.output = [item for item in response["output"] if isinstance(item, dict)]


class ResponsesSocket:
    """One client connection: frames in, turns run one at a time, events out."""

    def __init__(self, services: Services, socket: Socket, prepare: Prepare, run: Run) -> None:
        self._services = services
        self._socket = socket
        self._prepare = prepare
        self._run = run
        self._history: collections.OrderedDict[str, list[Any]] = collections.OrderedDict()
        self._active: asyncio.Task[None] | None = None
        self.turns = 0

    async def serve(self) -> None:
        try:
            while (message := await self._socket.receive()) is not None:
                await self._on_message(message)
        finally:
            if self._active is not None and not self._active.done():
                self._active.cancel()
                try:
                    await self._active
                except (asyncio.CancelledError, Exception):
                    pass

    async def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self._refuse(BadRequest("Binary frames are not supported: send response.create as a JSON text frame", code="invalid_request"))
            return
        try:
            frame = orjson.loads(message)
        except orjson.JSONDecodeError:
            await self._refuse(BadRequest("Invalid JSON in the WebSocket message", code="invalid_json"))
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "response.processed":
            return  # the client's acknowledgement of a response: nothing to do
        if kind != "response.create":
            await self._refuse(BadRequest(f"Unsupported event type: {kind!r} (expected 'response.create')", code="unknown_event_type", param="type"))
            return
        if self._active is not None and not self._active.done():
            await self._refuse(BadRequest("A response is already in progress on this connection.", code="response_in_progress"))
            return
        self._active = asyncio.ensure_future(self._turn(frame))

    async def _refuse(self, error: ClientError) -> None:
        await self._socket.send_text(orjson.dumps(error_frame(error.status, error_payload(error)["error"])).decode())

    async def _turn(self, frame: dict[str, Any]) -> None:
        try:
            body = self._expand(frame)
        except ClientError as error:
            await self._refuse(error)
            return
        body["stream"] = True  # events are the only way a socket answers
        if body.pop("generate", True) is False:
            await self._warm_up(body)
            return
        outcome = self._prepare(orjson.dumps(body))
        sink = FrameSink(self._socket, self._rate_limits)
        if isinstance(outcome, Reply):
            await sink.reply(outcome)
            return
        self.turns += 1
        await self._run(outcome, sink, self.turns)
        if sink.response_id and sink.status in ("completed", "incomplete"):
            self._keep(sink.response_id, body["input"] + sink.output)

    def _expand(self, frame: dict[str, Any]) -> dict[str, Any]:
        """The turn's body with the whole conversation: ``previous_response_id``'s, then the new input."""
        body = {k: v for k, v in frame.items() if k not in ("type", "previous_response_id")}
        raw = body.get("input")
        if raw is None:
            items: list[Any] = []
        elif isinstance(raw, str):
            items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
        elif isinstance(raw, list):
            items = raw
        else:
            raise BadRequest("'input' must be a string or an array of items", code="invalid_request", param="input")
        previous = frame.get("previous_response_id")
        if previous:
            history = self._history.get(previous) if isinstance(previous, str) else None
            if history is None:
                raise BadRequest(f"Previous response with id '{previous}' not found.", code="previous_response_not_found",
                                 param="previous_response_id")
            items = history + items
        body["input"] = items
        return body

    async def _warm_up(self, body: dict[str, Any]) -> None:
        """``generate: false``: a response with no output that later turns can continue from."""
        response_id = random_id("resp_")
        response = {"id": response_id, "object": "response", "created_at": now_seconds(),
                    "status": "completed", "model": body.get("model"), "output": [],
                    "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                              "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}}
        await self._socket.send_text(orjson.dumps(self._rate_limits()).decode())
        await self._socket.send_text(orjson.dumps({"type": "response.created", "response": {**response, "status": "in_progress"}}).decode())
        await self._socket.send_text(orjson.dumps({"type": "response.completed", "response": response}).decode())
        self._keep(response_id, body["input"])

    def _keep(self, response_id: str, conversation: list[Any]) -> None:
        self._history[response_id] = conversation
        while len(self._history) > KEPT_RESPONSES:
            self._history.popitem(last=False)

    def _rate_limits(self) -> dict[str, Any]:
        return rate_limits_event(self._services.pooled_quota())
