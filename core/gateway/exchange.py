"""Running one translated request: pipeline → stream translator → the client, byte by byte.

Independent of the host: the bridge hands in a ``Sink`` (core/gateway/sink.py: an HTTP response
being written).
Response headers go out when the turn commits (first output), so failures before that still
get a proper HTTP status; a long silent start is covered by sending headers plus keep-alives
after ``stream.commit_after_seconds``. If the client goes away, the host cancels this task and
the upstream transfer is aborted in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from core.access.keys import ClientKey
from core.accounts.quota import usage_headers
from core.codex.errors import UpstreamError
from core.codex.headers import relayed_headers
from core.gateway.capture import BodyCapture
from core.gateway.routes import Job
from core.gateway.sink import Sink
from core.protocols.base import SSE_HEADERS, ClientError, CollectedTurn, Reply
from core.services import Services
from core.turn.pipeline import TurnStream
from core.upstream.tap import tapping

logger = logging.getLogger(__name__)

CLIENT_CLOSED = 499


def _stream_headers(translator: Any) -> dict[str, str]:
    """SSE headers, with the translator's own type for other stream formats (NDJSON, JSON array)."""
    content_type = translator.content_type
    return dict(SSE_HEADERS) if content_type.startswith("text/event-stream") else {**SSE_HEADERS, "content-type": content_type}


class Exchange:
    def __init__(self, services: Services, job: Job, sink: Sink) -> None:
        self.services = services
        self.job = job
        self.capture = BodyCapture(sink) if services.cfg.logs.capture_bodies else None
        self.sink: Sink = self.capture or sink
        self.turn: TurnStream | None = None
        self.status = 0
        self.error: str | None = None
        self.started = time.monotonic()
        self.first_byte: float | None = None
        self.collected_usage: Any = None
        self.account_id: str | None = None
        self.provider: str | None = None  # the API-key provider that answered a plain call
        self.admitted: ClientKey | None = None  # the client key holding one of its concurrency slots
        self._last_write = self.started

    async def run(self) -> None:
        try:
            if await self._admitted():
                with tapping(self.job.tap):
                    if self.job.call is not None:
                        await self._run_call()
                    elif self.job.compact:
                        await self._run_compact()
                    elif self.job.prepared.turn.stream:
                        await self._run_stream()
                    else:
                        await self._run_collect()
        except asyncio.CancelledError:
            self.status, self.error = CLIENT_CLOSED, "client closed the connection"
            raise
        finally:
            if self.admitted is not None:  # first: a second cancellation during the await below must not keep the slot
                self.services.key_guard.release(self.admitted.id)
            if self.turn is not None:
                with contextlib.suppress(Exception):
                    await self.turn.aclose()
            self._record()

    async def _admitted(self) -> bool:
        """Whether the client key (if any) may run this turn now: its models, budget and
        concurrency. A refusal is answered here, in the caller's protocol."""
        key = self.job.client_key
        if key is None:
            return True
        model = self.job.prepared.turn.model
        try:
            self.services.key_guard.admit(key, model.requested, model.id)
        except ClientError as refused:
            reply = self.job.protocol.render_error(refused)
            self.status, self.error = reply.status, refused.message
            await self._reply(reply)
            return False
        self.admitted = key
        return True

    # --- the three shapes of answer -----------------------------------------------------------

    async def _run_compact(self) -> None:
        try:
            account, body, headers = await self.services.pipeline.compact(self.job.prepared.turn)
        except UpstreamError as err:
            await self._reply_error(err)
            return
        self.account_id = account.id
        self.status = 200
        reply = Reply(200, body)
        reply.headers.update(relayed_headers(headers, "responses"))
        await self._reply(reply)

    async def _run_call(self) -> None:
        assert self.job.call is not None
        try:
            called = await self.job.call()
        except UpstreamError as err:
            await self._reply_error(err)
            return
        self.provider, self.collected_usage = called.provider, called.usage
        self.status = called.reply.status
        await self._reply(called.reply)

    async def _run_collect(self) -> None:
        try:
            self.turn = turn = await self.services.pipeline.start(self.job.prepared.turn)
        except UpstreamError as err:
            await self._reply_error(err)
            return
        collected = CollectedTurn()
        async with contextlib.aclosing(turn.events()) as events:
            async for event in events:
                collected.add(event.deltas)
        collected.finalize(turn.parser)
        self.collected_usage = collected.usage
        if collected.error is not None:
            await self._reply_error(collected.error)
            return
        self.status = 200
        reply = self.job.protocol.render_response(collected, self.job.prepared.context)
        reply.headers.update(relayed_headers(turn.headers, self.job.prepared.turn.protocol))
        await self._reply(reply)

    async def _run_stream(self) -> None:
        cfg = self.services.cfg
        protocol = self.job.protocol
        translator = protocol.StreamTranslator(self.job.prepared.context)
        starting = asyncio.ensure_future(self.services.pipeline.start(self.job.prepared.turn))
        committed = False
        try:
            done, _ = await asyncio.wait({starting}, timeout=cfg.stream.commit_after_seconds)
            if not done:
                # The model is slow to say anything: start the response so the client does not time out.
                committed = True
                await self.sink.start(200, {**_stream_headers(translator), **self.job.extra_headers})
                keepalive = cfg.stream.keepalive_seconds
                while not done:
                    await self.sink.write(translator.keepalive())
                    done, _ = await asyncio.wait({starting}, timeout=keepalive)
            self.turn = turn = starting.result()
        except UpstreamError as err:
            if committed:
                self.status, self.error = err.status, str(err)
                await self.sink.write(translator.fail(err))
                await self.sink.end()
            else:
                await self._reply_error(err)
            return
        finally:
            if not starting.done():
                starting.cancel()

        if not committed:
            relayed = relayed_headers(turn.headers, self.job.prepared.turn.protocol)
            await self.sink.start(200, {**_stream_headers(translator), **relayed, **self.job.extra_headers})
        self.status = 200
        watchdog = asyncio.ensure_future(self._keepalive(translator))
        try:
            async with contextlib.aclosing(turn.events()) as events:
                async for event in events:
                    data = translator.feed(event)
                    if data:
                        if self.first_byte is None:
                            self.first_byte = time.monotonic()
                        self._last_write = time.monotonic()
                        await self.sink.write(data)
        finally:
            watchdog.cancel()
        if (error := getattr(turn.parser.terminal, "error", None)) is not None:
            self.error = str(error)
        await self.sink.end()

    async def _keepalive(self, translator: Any) -> None:
        """A comment frame whenever the upstream has been silent for a while (long reasoning)."""
        interval = self.services.cfg.stream.keepalive_seconds
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self._last_write >= interval:
                self._last_write = time.monotonic()
                await self.sink.write(translator.keepalive())

    async def _reply_error(self, err: UpstreamError) -> None:
        reply = self.job.protocol.render_error(err)
        if reply.status == 429:  # the pool's limits beside the refusal (Codex CLI reads them there)
            reply.headers = {**usage_headers(self.services.pooled_quota()), **reply.headers}
        self.status, self.error = reply.status, str(err)
        await self._reply(reply)

    async def _reply(self, reply: Reply) -> None:
        reply.headers.update(self.job.extra_headers)
        self.first_byte = time.monotonic()
        await self.sink.reply(reply)

    # --- bookkeeping -----------------------------------------------------------------------------

    def _record(self) -> None:
        now = time.monotonic()
        turn = self.turn
        usage = turn.parser.usage if turn is not None else self.collected_usage
        prepared = self.job.prepared
        account_id = turn.account.id if turn is not None and turn.account is not None else self.account_id
        provider = turn.provider if turn is not None else self.provider
        served_model = (turn.model if turn is not None else None) or prepared.turn.model.id
        cost = None
        if usage is not None:
            cost = self.services.pricing.cost(served_model, usage.input_tokens, usage.output_tokens, usage.cached_tokens)
        key = self.job.client_key
        if self.admitted is not None and usage is not None:
            self.services.key_guard.charge(self.admitted.id, (usage.input_tokens or 0) + (usage.output_tokens or 0), cost or 0.0)
        row = {
            "ts": self.job.received_at,
            "request_id": self.job.request_id,
            "account_id": account_id,
            "provider": provider,
            "protocol": prepared.turn.protocol,
            "path": self.job.path,
            "model": served_model,
            "requested_model": prepared.turn.model.requested,
            "stream": int(prepared.turn.stream),
            "status": self.status,
            "error": self.error,
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
            "cached_tokens": usage.cached_tokens if usage else None,
            "reasoning_tokens": usage.reasoning_tokens if usage else None,
            "ttfb_ms": round((self.first_byte - self.started) * 1000, 2) if self.first_byte else None,
            "duration_ms": round((now - self.started) * 1000, 2),
            "attempts": turn.attempts if turn is not None else None,
            "key_id": key.id if key is not None else None,
            "cost_usd": cost,
            # A ChatGPT account is not billed per token: its turns cost what the API would charge; an
            # API-key provider bills that price itself.
            "cost_basis": None if cost is None else "api_equivalent" if account_id else "provider" if provider else None,
        }
        if self.services.cfg.logs.enabled:
            self.services.request_log.record(row)
            if self.capture is not None:
                self.services.bodies.record(self.capture.captured(self.job.request_id, self.job.received_at, self.job.body))
        if self.job.annotate is not None:
            try:
                self.job.annotate(row)
            except Exception:
                logger.debug("flow annotation failed", exc_info=True)
