"""One provider serving one turn (or one plain JSON call): the next usable key, the wire's request
through the shared upstream transport, and — until the first output — another key after a key's
failure, or the same key again without an optional parameter the model refused."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from core.codex.errors import UpstreamError
from core.codex.events import CodexStreamParser
from core.codex.request import without_reasoning_items
from core.providers import errors
from core.providers.keys import KEY_FAILED, KEY_OK, KEY_RATE_LIMITED, KEY_REFUSED
from core.providers.listing import auth_headers, fetch_models
from core.providers.model import Provider, ProviderKey, ProviderModel
from core.providers.registry import ProviderRegistry
from core.providers.wires import CallSpec, SignatureMemo, StreamParser, Wire
from core.providers.wires import anthropic, chat, gemini, responses
from core.settings import Settings
from core.turn.model import Turn, UpstreamEvent
from core.turn.pipeline import TurnStream, prime
from core.upstream.transport import SimpleResponse, UpstreamStream, UpstreamTransport

logger = logging.getLogger(__name__)

WIRES: dict[str, Wire] = {"chat": chat, "responses": responses, "anthropic": anthropic, "gemini": gemini}
MAX_KEYS_PER_CALL = 10
_KEY_OUTCOME = {"rate_limited": KEY_RATE_LIMITED, "refused": KEY_REFUSED}
_REFUSED_LIMIT = 10_000


async def provider_events(upstream: UpstreamStream, frames: StreamParser, parser: CodexStreamParser) -> AsyncGenerator[UpstreamEvent, None]:
    """The provider's bytes → its wire's Responses events, each run through ``parser``."""
    async with contextlib.aclosing(upstream.chunks()) as chunks:
        async for chunk in chunks:
            for event in frames.feed(chunk):
                event.deltas = parser.feed(event.name, event.data)
                yield event
    for event in frames.close():
        event.deltas = parser.feed(event.name, event.data)
        yield event


@dataclass(slots=True)
class CallReply:
    """A plain call's answer (embeddings, images): the provider's status and body, passed on."""

    provider: str
    status: int
    headers: dict[str, str]
    body: bytes


class ProviderCaller:
    def __init__(self, registry: ProviderRegistry, transport: UpstreamTransport, settings: Callable[[], Settings]) -> None:
        self._registry = registry
        self._transport = transport
        self._settings = settings
        self._signatures = SignatureMemo()
        self._refused: dict[tuple[str, str], set[str]] = {}  # (provider, model) → parameter groups it refuses

    def _keys(self, provider: Provider) -> AsyncIterator[ProviderKey]:
        """Keys to try in turn (rate-limited and refused ones are left out as they fail)."""
        registry = self._registry
        tried: set[str] = set()

        async def walk() -> AsyncIterator[ProviderKey]:
            while len(tried) < MAX_KEYS_PER_CALL:
                key = registry.keys.choose(provider, tried)
                if key is None:
                    return
                tried.add(key.id)
                yield key

        return walk()

    def _record(self, key: ProviderKey, error: UpstreamError | None) -> None:
        if error is None:
            self._registry.keys.record(key, KEY_OK)
        else:
            self._registry.keys.record(key, _KEY_OUTCOME.get(error.account_effect or "", KEY_FAILED), error.message, error.retry_after)

    async def start(self, turn: Turn, provider: Provider, model: str, attempts: int) -> TurnStream:
        """Stream ``turn`` from ``provider`` as ``model``; raise the last ``UpstreamError`` when no
        key could start it."""
        wire = WIRES[provider.wire]
        refused = self._refused.setdefault((provider.id, model), set())
        last: UpstreamError | None = None
        server_errors = 0
        async for key in self._keys(provider):
            while True:
                attempts += 1
                spec = CallSpec(provider, key.key, model, turn, self._settings().providers.default_max_tokens, frozenset(refused),
                                self._signatures)  # fmt: skip
                try:
                    return await self._open(spec, wire, key, attempts)
                except UpstreamError as err:
                    logger.info("provider %s (key %s) failed: %s", provider.id, key.id, err)
                    if (group := errors.refused_group(err, refused)) is not None:
                        if len(self._refused) > _REFUSED_LIMIT:
                            self._refused.clear()
                        refused.add(group)  # remembered for this model: later turns skip it at once
                        continue
                    if "invalid_encrypted_content" in f"{err.code} {err.message}" and (stripped := without_reasoning_items(turn.body)):
                        turn.body = stripped  # reasoning sealed by another account or provider
                        continue
                    self._record(key, err)
                    last = err
                    break
            if last.account_effect is None:
                server_errors += 1
                if last.status < 500 or server_errors >= 2:
                    raise errors.for_client(last)  # the request itself, or the provider as a whole: another key will not do better
        raise errors.for_client(last) if last else errors.no_key_error(provider, self._registry.keys.soonest_back(provider))

    async def _open(self, spec: CallSpec, wire: Wire, key: ProviderKey, attempts: int) -> TurnStream:
        request = wire.build_request(spec)
        upstream = await self._transport.open_stream(request.url, request.headers, request.body)
        if upstream.status >= 400:
            raise errors.classify(spec.provider, upstream.status, upstream.headers, await upstream.read())
        content_type = upstream.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            body = await upstream.read()
            raise errors.classify(spec.provider, 502, upstream.headers,
                                  b"expected an event stream, got " + content_type.encode() + b": " + body[:300])  # fmt: skip
        parser = CodexStreamParser()
        buffered, live = await prime(upstream, parser, provider_events(upstream, wire.StreamParser(spec), parser))
        self._record(key, None)
        return TurnStream(None, upstream, parser, buffered, live, attempts, provider=spec.provider.id, model=spec.model)

    # --- plain calls ------------------------------------------------------------------------------------

    async def call(self, provider: Provider, method: str, path: str, body: bytes, content_type: str = "application/json") -> CallReply:
        """One JSON (or multipart) call to ``{base}{path}``, moving to the next key when a key is
        refused or rate limited. The provider's answer is returned whatever its status."""
        timeout = self._settings().api.timeout_seconds
        last: CallReply | None = None
        async for key in self._keys(provider):
            headers = {**provider.headers, "Content-Type": content_type, "Accept": "application/json", **auth_headers(provider, key.key)}
            reply = await self._transport.request(method, provider.base_url.rstrip("/") + path, headers, body, timeout=timeout)
            last = CallReply(provider.id, reply.status, reply.headers, reply.body)
            if reply.status < 400:
                self._record(key, None)
                return last
            error = errors.classify(provider, reply.status, reply.headers, reply.body)
            self._record(key, error)
            if error.account_effect is None:
                return last
        if last is not None:
            return last
        raise errors.no_key_error(provider, self._registry.keys.soonest_back(provider))

    async def fetch_models(self, provider: Provider) -> list[ProviderModel]:
        async def get(url: str, headers: dict[str, str]) -> SimpleResponse:
            return await self._transport.request("GET", url, headers, timeout=30)

        last: Exception | None = None
        async for key in self._keys(provider):
            try:
                models = await fetch_models(get, provider, key.key)
            except UpstreamError as err:
                self._record(key, err)
                last = err
                if err.account_effect is None:
                    break
                continue
            self._record(key, None)
            return models
        if last is not None:
            raise last
        raise errors.no_key_error(provider, self._registry.keys.soonest_back(provider))
