"""The one request pipeline: choose an account, call the backend, retry or fail over before the
client has seen a byte, and hand a committed event stream to the protocol translator.

A turn is "committed" once the backend has produced its first piece of output (text, reasoning,
a tool call) or finished. Everything that goes wrong before that — an HTTP error, an early
``response.failed``, an empty completion, a dropped connection — is retried here, invisibly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.accounts.model import Account
from core.accounts.pool import AccountPool
from core.catalog import ResolvedModel
from core.codex.errors import FATAL, RETRY_SAME, ROTATE, UpstreamError, classify_http
from core.codex.events import PRELUDE_EVENTS, TERMINAL_EVENTS, CodexStreamParser, Delta, Failed, Finished
from core.codex.headers import account_installation_id, base_headers, responses_headers
from core.codex.request import finalize_body, finalize_compact_body, scoped_conversation_id, without_reasoning_items
from core.codex.sse import SSEParser
from core.config import ConfigStore
from core.upstream.transport import UpstreamStream, UpstreamTransport

logger = logging.getLogger(__name__)

SAME_ACCOUNT_RETRY_DELAYS = (1.0, 2.0)
MAX_ACCOUNTS_PER_TURN = 4


@dataclass(slots=True)
class Turn:
    """One client request, translated to the Codex format and not yet bound to an account."""

    protocol: str
    body: dict[str, Any]
    model: ResolvedModel
    stream: bool
    conversation_key: str | None = None
    forwarded_headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class UpstreamEvent:
    name: str
    data: dict[str, Any]
    raw: bytes  # the event's data bytes exactly as the backend sent them
    deltas: list[Delta] = field(default_factory=list)  # what the shared parser made of it


def disconnected_event(detail: str = "") -> UpstreamEvent:
    message = "Upstream stream closed before response.completed" + (f": {detail}" if detail else "")
    data = {"type": "error", "error": {"type": "server_error", "code": "stream_disconnected", "message": message}}
    return UpstreamEvent("error", data, orjson.dumps(data))


class TurnStream:
    """A committed turn: the serving account and its remaining events (buffered ones first)."""

    def __init__(self, account: Account, upstream: UpstreamStream, parser: CodexStreamParser,
                 buffered: list[UpstreamEvent], live: AsyncIterator[UpstreamEvent] | None, attempts: int) -> None:
        self.account = account
        self.headers = upstream.headers
        self.parser = parser  # has seen every event handed out so far
        self.attempts = attempts
        self._upstream = upstream
        self._buffered = buffered
        self._live = live  # None when the buffered events already include the terminal one

    async def events(self) -> AsyncIterator[UpstreamEvent]:
        """Buffered events, then the live stream. A stream that ends without a terminal event (or
        whose connection breaks) ends with a synthetic ``stream_disconnected`` error event."""
        try:
            for event in self._buffered:
                yield event
            self._buffered = []
            if self._live is None:
                return
            try:
                async for event in self._live:
                    yield event
                    if event.name in TERMINAL_EVENTS:
                        return
                detail = ""
            except UpstreamError as err:
                detail = err.message
            event = disconnected_event(detail)
            event.deltas = self.parser.feed(event.name, event.data)
            yield event
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self._upstream.aclose()


async def read_events(upstream: UpstreamStream, parser: CodexStreamParser) -> AsyncIterator[UpstreamEvent]:
    """Upstream bytes → SSE frames → decoded events, each run through ``parser``."""
    sse = SSEParser()
    async for chunk in upstream.chunks():
        for frame in sse.feed(chunk):
            if (event := _decode(frame.event, frame.data)) is not None:
                event.deltas = parser.feed(event.name, event.data)
                yield event
    for frame in sse.close():
        if (event := _decode(frame.event, frame.data)) is not None:
            event.deltas = parser.feed(event.name, event.data)
            yield event


def _decode(name: str, raw: bytes) -> UpstreamEvent | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = {"type": "error", "error": {"code": "invalid_event", "message": raw[:500].decode("utf-8", "replace")}}
        return UpstreamEvent("error", data, orjson.dumps(data))
    if not isinstance(data, dict):
        return None
    return UpstreamEvent(name or data.get("type", ""), data, raw)


class NoAccountError(UpstreamError):
    pass


def _foreign_reasoning(err: UpstreamError) -> bool:
    return "invalid_encrypted_content" in f"{err.code} {err.message}"


class Pipeline:
    def __init__(self, config: ConfigStore, pool: AccountPool, transport: UpstreamTransport, installation_id: str) -> None:
        self._config = config
        self._pool = pool
        self._transport = transport
        self._installation_id = installation_id

    async def start(self, turn: Turn) -> TurnStream:
        """Run ``turn`` until it commits on some account; raise the final UpstreamError otherwise."""
        excluded: set[str] = set()
        last_error: UpstreamError | None = None
        attempts = 0
        account = self._choose(turn, excluded, last_error)
        same_account_retries = 0
        while True:
            attempts += 1
            try:
                stream = await self._open(account, turn)
                return await self._prime(account, stream, attempts)
            except UpstreamError as err:
                last_error = err
                logger.info("turn attempt %d on %s failed: %s", attempts, account.id, err)
                self._pool.apply_error(account, err, float(self._config.current.get("auth.rate_limit_backoff_seconds") or 60))
                if _foreign_reasoning(err) and (stripped := without_reasoning_items(turn.body)) is not None:
                    # Reasoning sealed by another account (the conversation failed over) cannot be
                    # replayed here; the turn still works without it.
                    turn.body = stripped
                    continue
                if err.action == FATAL:
                    raise
                if err.action == RETRY_SAME and same_account_retries < len(SAME_ACCOUNT_RETRY_DELAYS):
                    await asyncio.sleep(SAME_ACCOUNT_RETRY_DELAYS[same_account_retries])
                    same_account_retries += 1
                    continue
                excluded.add(account.id)
                if len(excluded) >= MAX_ACCOUNTS_PER_TURN:
                    raise
                account = self._choose(turn, excluded, last_error)
                same_account_retries = 0

    def _choose(self, turn: Turn, excluded: set[str], last_error: UpstreamError | None) -> Account:
        account = self._pool.choose(turn.model.id, excluded)
        if account is not None:
            return account
        if last_error is not None and last_error.action != RETRY_SAME:
            raise last_error
        if not self._pool.all():
            raise NoAccountError(401, "not_authenticated", "No ChatGPT account is configured. Add one at / or POST /auth/accounts.")
        available_at = self._pool.next_available_at()
        if available_at:
            wait = max(1.0, available_at - time.time())
            raise NoAccountError(429, "rate_limit_exceeded", f"All accounts are rate limited; retry in {wait:.0f}s.", retry_after=wait)
        raise last_error or NoAccountError(503, "no_available_accounts", "No usable ChatGPT account (all expired, banned or disabled).")

    def _identity(self, account: Account, turn: Turn) -> tuple[str, str]:
        key = turn.conversation_key or f"req-{time.monotonic_ns()}"
        return scoped_conversation_id(account.id, key), account_installation_id(self._installation_id, account.id)

    async def _open(self, account: Account, turn: Turn) -> UpstreamStream:
        cfg = self._config.current
        conversation_id, installation_id = self._identity(account, turn)
        headers = responses_headers(
            cfg,
            account.access_token,
            account.chatgpt_account_id,
            conversation_id=conversation_id,
            installation_id=installation_id,
            forwarded=turn.forwarded_headers,
        )
        body = finalize_body(turn.body, conversation_id=conversation_id, installation_id=installation_id)
        stream = await self._transport.open_stream(cfg.get("api.base_url").rstrip("/") + "/codex/responses", headers, body)
        if stream.status >= 400:
            raw = await stream.read()
            raise classify_http(stream.status, stream.headers, raw)
        content_type = stream.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            raw = await stream.read()
            error = classify_http(502, stream.headers, raw)
            raise UpstreamError(502, "non_sse_response", f"Upstream answered {content_type or 'no content type'} instead of an event stream: {error.message}", action=ROTATE)
        return stream

    async def _prime(self, account: Account, upstream: UpstreamStream, attempts: int) -> TurnStream:
        """Read until the first output event; failures up to that point are retryable."""
        parser = CodexStreamParser()
        live = read_events(upstream, parser)
        buffered: list[UpstreamEvent] = []
        try:
            async for event in live:
                buffered.append(event)
                if event.name in PRELUDE_EVENTS:
                    continue
                terminal = parser.terminal
                if isinstance(terminal, Failed):
                    raise terminal.error
                if isinstance(terminal, Finished) and not parser.produced and not (terminal.usage and terminal.usage.output_tokens):
                    raise UpstreamError(502, "empty_response", "Codex returned an empty response", action=ROTATE)
                if parser.produced or terminal is not None:
                    return TurnStream(account, upstream, parser, buffered, None if terminal else live, attempts)
        except BaseException:
            await upstream.aclose()
            raise
        await upstream.aclose()
        raise UpstreamError(502, "stream_disconnected", "Upstream stream closed before any output", action=ROTATE)

    async def compact(self, turn: Turn) -> tuple[Account, bytes]:
        """``/responses/compact``: a plain JSON call, with the same account choice and failover."""
        excluded: set[str] = set()
        last_error: UpstreamError | None = None
        while True:
            account = self._choose(turn, excluded, last_error)
            cfg = self._config.current
            conversation_id, installation_id = self._identity(account, turn)
            headers = base_headers(cfg, account.access_token, account.chatgpt_account_id)
            headers.update({"Content-Type": "application/json", "Accept": "application/json",
                            "OpenAI-Beta": "responses_websockets=2026-02-06", "x-client-request-id": conversation_id,
                            "x-codex-installation-id": installation_id})
            url = cfg.get("api.base_url").rstrip("/") + "/codex/responses/compact"
            try:
                reply = await self._transport.request("POST", url, headers, finalize_compact_body(turn.body),
                                                      timeout=float(cfg.get("api.timeout_seconds") or 600))
                if reply.status >= 400:
                    raise classify_http(reply.status, reply.headers, reply.body)
                return account, reply.body
            except UpstreamError as err:
                last_error = err
                self._pool.apply_error(account, err)
                if err.action == FATAL or len(excluded) + 1 >= MAX_ACCOUNTS_PER_TURN:
                    raise
                excluded.add(account.id)
