"""The one request pipeline: choose an account, call the backend, retry or fail over before the
client has seen a byte, and hand a committed event stream to the protocol translator.

A turn is "committed" once the backend has produced its first piece of output (text, reasoning,
a tool call) or finished. Everything that goes wrong before that — an HTTP error, an early
``response.failed``, an empty completion, a dropped connection — is retried here, invisibly.

A turn goes to the backend over its WebSocket (core/turn/websocket.py) or HTTP SSE; both hand the
same decoded events to the same code. A Responses turn that continues an earlier response
(``previous_response_id``) goes to the socket holding that response, or is sent in full from the
stored history (core/turn/chains.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from core.accounts.proxy_pool import Route

from core.accounts.backend import account_headers, cookie_header
from core.accounts.model import Account
from core.accounts.oauth import OAuthError
from core.accounts.pool import AccountPool
from core.accounts.quota import client_plan_type, parse_headers
from core.accounts.tokens import TokenManager
from core.codex.errors import FATAL, RETRY_SAME, ROTATE, USAGE_LIMIT_REACHED, UpstreamError, classify_http, is_unsupported_model
from core.codex.events import PRELUDE_EVENTS, TERMINAL_EVENTS, CodexStreamParser, Failed, Finished
from core.codex.headers import account_installation_id, responses_headers, websocket_headers
from core.codex.request import compress_body, finalize_body, finalize_compact_body, scoped_conversation_id, without_reasoning_items
from core.codex.sse import SSEParser
from core.config import ConfigStore
from core.turn.chains import ChainStore
from core.turn.model import Turn, Upstream, UpstreamEvent, decode_event, disconnected_event
from core.turn.websocket import SocketTurn, SocketTurns
from core.upstream.transport import UpstreamStream, UpstreamTransport

logger = logging.getLogger(__name__)

SAME_ACCOUNT_RETRY_DELAYS = (1.0, 2.0)
# Accounts one turn may move across. A failure that rotates marks its account, so later turns skip
# it anyway; the bound only stops a turn from walking a large pool when something wider is wrong.
MAX_ACCOUNTS_PER_TURN = 10


class TurnStream:
    """A committed turn: who serves it (an account of the pool, or an API-key provider) and its
    remaining events (buffered ones first)."""

    def __init__(self, account: Account | None, upstream: Upstream, parser: CodexStreamParser,
                 buffered: list[UpstreamEvent], live: AsyncGenerator[UpstreamEvent, None] | None, attempts: int,
                 provider: str | None = None, model: str | None = None) -> None:
        self.account = account
        self.provider = provider  # the provider's id when one serves the turn
        self.model = model  # the model that serves it, when not the turn's own (a provider's name for it)
        self.headers = upstream.headers
        self.parser = parser  # has seen every event handed out so far
        self.attempts = attempts
        self._upstream = upstream
        self._buffered = buffered
        self._live = live  # None when the buffered events already include the terminal one
        self.on_close: Callable[[], None] | None = None  # releases the account's in-flight slot in the pool
        self.on_complete: Callable[[CodexStreamParser], None] | None = None  # after a completed response

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
            if self._live is not None:
                await self._live.aclose()
            await self.aclose()

    async def aclose(self) -> None:
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()
        on_complete, self.on_complete = self.on_complete, None
        if on_complete is not None and isinstance(self.parser.terminal, Finished):
            on_complete(self.parser)
        await self._upstream.aclose()


class SseTurn:
    """A turn's HTTP SSE answer as an ``Upstream`` (``read_events`` below)."""

    def __init__(self, stream: UpstreamStream) -> None:
        self.headers = stream.headers
        self._stream = stream

    def events(self, parser: CodexStreamParser) -> AsyncGenerator[UpstreamEvent, None]:
        return read_events(self._stream, parser)

    async def aclose(self) -> None:
        await self._stream.aclose()


async def read_events(upstream: UpstreamStream, parser: CodexStreamParser) -> AsyncGenerator[UpstreamEvent, None]:
    """Upstream bytes → SSE frames → decoded events, each run through ``parser``."""
    sse = SSEParser()
    async with contextlib.aclosing(upstream.chunks()) as chunks:
        async for chunk in chunks:
            for frame in sse.feed(chunk):
                if (event := decode_event(frame.event, frame.data)) is not None:
                    event.deltas = parser.feed(event.name, event.data)
                    yield event
    for frame in sse.close():
        if (event := decode_event(frame.event, frame.data)) is not None:
            event.deltas = parser.feed(event.name, event.data)
            yield event


class NoAccountError(UpstreamError):
    pass


def _foreign_reasoning(err: UpstreamError) -> bool:
    return "invalid_encrypted_content" in f"{err.code} {err.message}"


T = TypeVar("T")
Attempt = Callable[[Account, int], Awaitable[T]]  # one try of the turn on one account
PoolStart = Callable[[Turn], Awaitable[TurnStream]]


class TurnRouter(Protocol):
    """Model routing to API-key providers (core/providers/failover.py), for turns whose model a
    route claimed (``turn.model.route``)."""

    async def start(self, turn: Turn, pool: PoolStart) -> TurnStream: ...  # the route's targets in order

    def pool_model(self, turn: Turn) -> str | None: ...  # the pool model a route names, if any


class Pipeline:
    def __init__(self, config: ConfigStore, pool: AccountPool, tokens: TokenManager, transport: UpstreamTransport,
                 installation_id: str, route: Route, router: TurnRouter | None = None) -> None:
        self._config = config
        self._pool = pool
        self._tokens = tokens
        self._transport = transport
        self._route = route  # the account's proxy (core/accounts/proxy_pool.py)
        self._installation_id = installation_id
        self._router = router
        self.sockets = SocketTurns(config, transport, self._observe, pool.plans.prefers_websockets)
        self.chains = ChainStore()

    async def start(self, turn: Turn) -> TurnStream:
        """Run ``turn`` until it commits on some account (or on a provider a model route names);
        raise the final UpstreamError otherwise."""
        prefer = self._continue_chain(turn)
        if turn.model.route is not None and self._router is not None:
            turn.body, turn.history = _full_body(turn), None  # providers get the whole conversation
            return await self._router.start(turn, self._start_pool)
        return await self._start_pool(turn, prefer)

    async def _start_pool(self, turn: Turn, prefer: str | None = None) -> TurnStream:

        async def attempt(account: Account, attempts: int) -> TurnStream:
            mode: str | None = None  # None: as configured; "fresh": a new socket; "sse"
            while True:
                upstream = await self._open(account, turn, mode)
                parser = CodexStreamParser()
                try:
                    buffered, live = await prime(upstream, parser, upstream.events(parser))
                except UpstreamError as err:
                    again = upstream.retry(err) if isinstance(upstream, SocketTurn) and mode is None else None
                    if again is None:
                        raise
                    mode = again  # a socket that died while idle, or a chain its socket lost: once more
                    continue
                self._pool.bind(turn.conversation_key, account)
                committed = TurnStream(account, upstream, parser, buffered, live, attempts)
                if turn.keep_chain:
                    committed.on_complete = functools.partial(self._keep_chain, turn, account)
                return committed

        _, committed = await self._serve(turn, attempt, prefer)
        return committed

    def _continue_chain(self, turn: Turn) -> str | None:
        """For a turn that continues an earlier response: its history (sent in full unless the
        socket holding the response takes the turn) and the account that served it."""
        previous = turn.previous_response_id
        if previous is None:
            return None
        link = self.chains.get(previous)
        history = self.chains.history(previous) if link is not None else None
        if link is None or history is None:
            raise UpstreamError(400, "previous_response_not_found", f"Previous response with id '{previous}' not found: the proxy keeps responses only while it runs and within a memory budget. Send the full conversation in 'input'.")
        turn.history = history
        turn.conversation_key = link.conversation_key or turn.conversation_key
        return link.account_id

    def _keep_chain(self, turn: Turn, account: Account, parser: CodexStreamParser) -> None:
        if parser.response_id:
            self.chains.record(parser.response_id, turn.previous_response_id, turn.body.get("input") or [],
                               parser.output_items, account.id, turn.conversation_key)

    async def compact(self, turn: Turn) -> tuple[Account, bytes, dict[str, str]]:
        """``/responses/compact``: a plain JSON call, with the same account choice and failover
        (on the ChatGPT pool only: providers have no compaction). Returns the serving account, the
        answer's body and its headers."""
        if turn.model.route is not None and self._router is not None:
            model = self._router.pool_model(turn)
            if model is None:
                raise UpstreamError(400, "unsupported_model", f"'{turn.model.requested}' is served by an API-key provider, which cannot compact; "
                                    "/v1/responses/compact works with the ChatGPT pool's models")  # fmt: skip
            turn.body["model"] = model

        async def attempt(account: Account, attempts: int) -> tuple[bytes, dict[str, str]]:
            cfg = self._config.current
            conversation_id, installation_id = self._identity(account, turn)
            url = cfg.api.base_url.rstrip("/") + "/codex/responses/compact"
            headers = account_headers(cfg, account, url)
            headers.update({"accept": "application/json", "content-type": "application/json",
                            "x-client-request-id": conversation_id, "x-codex-installation-id": installation_id})
            reply = await self._transport.request("POST", url, headers, finalize_compact_body(turn.body),
                                                  timeout=cfg.api.timeout_seconds, proxy=self._route(account))
            self._observe(account, reply.headers, reply.set_cookies, url)
            if reply.status >= 400:
                raise classify_http(reply.status, reply.headers, reply.body)
            return reply.body, reply.headers

        account, (body, headers) = await self._serve(turn, attempt)
        return account, body, headers

    def close(self) -> None:
        """Close every pooled WebSocket (at shutdown)."""
        self.sockets.close()

    async def _serve(self, turn: Turn, attempt: Attempt[T], prefer: str | None = None) -> tuple[Account, T]:
        """Try ``attempt`` on accounts until one succeeds: same-account retries for transient
        errors, one token refresh for a 401, then the next account the pool offers. A TurnStream
        result keeps the account's in-flight slot until it is closed. ``prefer``: the account to
        try first when it can serve."""
        excluded: set[str] = set()
        await self._pool.recall(turn.conversation_key)  # shared store: its earlier turns may have gone elsewhere
        holding = account = self._choose(turn, excluded, None, prefer)  # its in-flight slot is ours to release
        attempts = same_account_retries = 0
        reauthorized = False
        try:
            while True:
                attempts += 1
                sent_token = account.access_token
                try:
                    account = await self._tokens.ensure_fresh(account)
                    sent_token = account.access_token
                    result = await attempt(account, attempts)
                except UpstreamError as err:
                    logger.info("turn attempt %d on %s failed: %s", attempts, account.id, err)
                    if _foreign_reasoning(err) and _strip_reasoning(turn):
                        # Reasoning sealed by another account (the conversation failed over) cannot be
                        # replayed here; the turn still works without it.
                        continue
                    if (err.status == 401 and err.account_effect == "expired" and not reauthorized
                            and account.refresh_token and not account.refresh_error):
                        reauthorized = True
                        if await self._reauthorize(account, sent_token):
                            continue  # one refresh, then the same account again
                    self._pool.apply_error(account, err)
                    if err.code == "model_not_supported" or is_unsupported_model(err.message):
                        self._pool.plans.learn_refused(account.plan, turn.model.id)
                    if err.action == RETRY_SAME and same_account_retries < len(SAME_ACCOUNT_RETRY_DELAYS):
                        await asyncio.sleep(SAME_ACCOUNT_RETRY_DELAYS[same_account_retries])
                        same_account_retries += 1
                        continue
                    self._pool.release(account)
                    holding = None
                    if err.action == FATAL or len(excluded) + 1 >= MAX_ACCOUNTS_PER_TURN:
                        raise
                    excluded.add(account.id)
                    holding = account = self._choose(turn, excluded, err)
                    same_account_retries = 0
                    reauthorized = False
                    continue
                if isinstance(result, TurnStream):
                    result.on_close = functools.partial(self._pool.release, account)
                else:
                    self._pool.release(account)
                holding = None
                return account, result
        finally:
            if holding is not None:  # cancelled (the client left) or failed outside the upstream call
                self._pool.release(holding)

    async def _reauthorize(self, account: Account, sent_token: str) -> bool:
        """After a 401: refresh the account's tokens once (unless that already happened since
        ``sent_token`` went out). True when it now holds a token worth another try."""
        try:
            await self._tokens.refresh(account.id, stale=sent_token, reason="upstream 401")
        except OAuthError as exc:
            logger.info("refresh after a 401 on %s failed: %s", account.id, exc)
            return False
        return account.access_token != sent_token

    def _choose(self, turn: Turn, excluded: set[str], last_error: UpstreamError | None, prefer: str | None = None) -> Account:
        account = self._pool.choose(turn.model.id, turn.conversation_key, excluded, prefer)
        if account is not None:
            return account
        raise self._unavailable(turn, last_error)

    def _unavailable(self, turn: Turn, last_error: UpstreamError | None) -> UpstreamError:
        """The clearest error when no account can take the turn, with when to retry if it will pass."""
        state = self._pool.availability(turn.model.id)
        now = time.time()
        if state.total == 0:
            return NoAccountError(401, "not_authenticated", "No ChatGPT account is configured. Log in at /auth/login or add one with POST /auth/accounts.")
        if state.plan_excluded and (last_error is None or last_error.code != "model_not_supported"):
            return NoAccountError(400, "model_not_supported", f"The model '{turn.model.id}' is not available on the plan of any usable account.")
        if state.plan_excluded and last_error is not None:
            return last_error
        if state.serving and last_error is not None:
            return last_error  # accounts that could serve all failed this turn: say how the last one did
        if state.rate_limited_until:
            # The backend's own usage-limit answer, for the pool: Codex CLI then reports the goal as
            # usage-limited (with when it resets) instead of retrying or calling it blocked.
            wait = max(1.0, state.rate_limited_until - now)
            return NoAccountError(429, USAGE_LIMIT_REACHED, f"Every account has reached its usage limit; the first one is available again in {wait:.0f}s.",
                                  retry_after=wait, plan_type=client_plan_type(a.plan for a in self._pool.all()))
        if state.cooldown_until:
            wait = max(1.0, state.cooldown_until - now)
            return NoAccountError(503, "upstream_blocked", f"The upstream is blocking every account (Cloudflare); retry in {wait:.0f}s.", retry_after=wait)
        if state.gated:
            return NoAccountError(503, "proxy_unavailable", f"No account can serve: their proxies cannot be used ({state.gated}).")
        if last_error is not None:
            return last_error
        return NoAccountError(503, "no_available_accounts", "No usable ChatGPT account: all are expired, banned or disabled. Log in again at /auth/login.")

    def _identity(self, account: Account, turn: Turn) -> tuple[str, str]:
        key = turn.conversation_key or f"req-{time.monotonic_ns()}"
        return scoped_conversation_id(account.id, key), account_installation_id(self._installation_id, account.id)

    def _observe(self, account: Account, headers: dict[str, str], set_cookies: list[str], url: str) -> None:
        """What every answer tells about the account: its quota, and the cookies it was given."""
        if (quota := parse_headers(headers, time.time())) is not None:
            self._pool.record_quota(account, quota)
        if set_cookies:
            self._pool.store_cookies(account, set_cookies, url)

    async def _open(self, account: Account, turn: Turn, mode: str | None = None) -> Upstream:
        """Send the turn: over a socket when it should and one can be had, else over SSE."""
        cfg = self._config.current
        conversation_id, installation_id = self._identity(account, turn)
        url = cfg.api.base_url.rstrip("/") + "/codex/responses"
        cookies = cookie_header(account, url)
        proxy = self._route(account)
        if mode != "sse" and self.sockets.wanted(turn):

            def frame(chained: bool) -> bytes:
                extra: dict[str, Any] = {"type": "response.create"}
                if chained:
                    extra["previous_response_id"] = turn.previous_response_id
                body = turn.body if chained else _full_body(turn)
                return finalize_body(body, conversation_id=conversation_id, installation_id=installation_id, extra=extra)

            socket_headers = websocket_headers(cfg, account.access_token, account.chatgpt_account_id,
                                               conversation_id=conversation_id, installation_id=installation_id,
                                               forwarded=turn.forwarded_headers, model=turn.body.get("model"))
            socket_headers.update(cookies)
            holding = turn.previous_response_id if turn.history is not None else None
            opened = await self.sockets.start(account, url, turn.conversation_key, socket_headers, frame, holding,
                                              proxy, fresh=mode == "fresh")
            if opened is not None:
                return opened
        headers = responses_headers(cfg, account.access_token, account.chatgpt_account_id, conversation_id=conversation_id,
                                    installation_id=installation_id, forwarded=turn.forwarded_headers,
                                    model=turn.body.get("model"))
        headers.update(cookies)
        body = compress_body(finalize_body(_full_body(turn), conversation_id=conversation_id, installation_id=installation_id))
        stream = await self._transport.open_stream(url, headers, body, proxy)
        self._observe(account, stream.headers, stream.set_cookies, url)
        if stream.status >= 400:
            raw = await stream.read()
            raise classify_http(stream.status, stream.headers, raw)
        content_type = stream.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            raw = await stream.read()
            error = classify_http(502, stream.headers, raw)
            raise UpstreamError(502, "non_sse_response", f"Upstream answered {content_type or 'no content type'} instead of an event stream: {error.message}", action=ROTATE)
        return SseTurn(stream)


async def prime(upstream: Upstream, parser: CodexStreamParser,
                live: AsyncGenerator[UpstreamEvent, None]) -> tuple[list[UpstreamEvent], AsyncGenerator[UpstreamEvent, None] | None]:
    """Read ``live`` until the first output event: (the events so far, the rest of the stream, None
    when it already ended). Failures up to that point raise ``UpstreamError``: they are retryable."""
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
                raise UpstreamError(502, "empty_response", "Upstream returned an empty response", action=ROTATE)
            if parser.produced or terminal is not None:
                if terminal is not None:
                    await live.aclose()
                return buffered, None if terminal else live
    except BaseException:
        await live.aclose()
        await upstream.aclose()
        raise
    await upstream.aclose()
    raise UpstreamError(502, "stream_disconnected", "Upstream stream closed before any output", action=ROTATE)


def _full_body(turn: Turn) -> dict[str, Any]:
    """The turn with the history it continues, when that must be sent (no socket holds it)."""
    if not turn.history:
        return turn.body
    return {**turn.body, "input": [*turn.history, *(turn.body.get("input") or [])]}


def _strip_reasoning(turn: Turn) -> bool:
    """Drop replayed reasoning from the turn (and the history it continues); False when it had none."""
    stripped = without_reasoning_items(turn.body)
    history = without_reasoning_items({"input": turn.history}) if turn.history else None
    if stripped is not None:
        turn.body = stripped
    if history is not None:
        turn.history = history["input"]
    return stripped is not None or history is not None
