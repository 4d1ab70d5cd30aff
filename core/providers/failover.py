"""The pipeline's router for turns a model route claimed: the route's targets in order — the ChatGPT
pool or a provider — each tried until one commits, moving on only when the target could not serve
(core/providers/errors.py ``fails_over``), never after output began. The endpoints only providers
serve (embeddings, images through a provider) fail over the same way."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from core.codex.catalog import ModelCatalog
from core.codex.errors import UpstreamError
from core.providers import errors
from core.providers.caller import CallReply, ProviderCaller
from core.providers.model import POOL, Provider
from core.providers.registry import ProviderRegistry
from core.turn.model import Turn
from core.turn.pipeline import PoolStart, TurnStream

logger = logging.getLogger(__name__)


class ProviderRouter:
    def __init__(self, registry: ProviderRegistry, caller: ProviderCaller, catalog: Callable[[], ModelCatalog]) -> None:
        self._registry = registry
        self._caller = caller
        self._catalog = catalog

    async def start(self, turn: Turn, pool: PoolStart) -> TurnStream:
        match = self._registry.table.match(turn.model.route or "")
        if match is None:  # the route went away since the request was read
            return await pool(turn)
        last: UpstreamError | None = None
        for index, target in enumerate(match.targets):
            try:
                if target.provider == POOL:
                    turn.body["model"] = self._catalog().pool_model(target.model or match.key)
                    return await pool(turn)
                provider = self._registry.get(target.provider)
                if provider is None or not provider.enabled:
                    continue
                return await self._caller.start(turn, provider, target.model or match.key, index)
            except UpstreamError as err:
                if not errors.fails_over(err):
                    raise
                logger.info("route %s: target %s failed (%s), trying the next one", match.key, target.provider, err)
                last = err
        raise last or UpstreamError(503, "no_route_target", f"No enabled provider serves '{match.key}'")

    def pool_model(self, turn: Turn) -> str | None:
        match = self._registry.table.match(turn.model.route or "")
        target = next((t for t in match.targets if t.provider == POOL), None) if match else None
        return None if target is None or match is None else self._catalog().pool_model(target.model or match.key)

    def capable(self, model: str, capability: str) -> list[tuple[Provider, str]]:
        return self._registry.table.capable(model, capability)

    async def call(self, pairs: list[tuple[Provider, str]], send: Callable[[Provider, str], Awaitable[CallReply]]) -> CallReply:
        """``send(provider, upstream model)`` (a coroutine giving a ``CallReply``) on each pair in turn
        until one answers with something other than a failure another provider could avoid."""
        last: CallReply | None = None
        error: UpstreamError | None = None
        for provider, model in pairs:
            try:
                last = await send(provider, model)
            except UpstreamError as err:
                error = err
                continue
            if last.status < 400 or last.status not in (401, 402, 403, 404, 408, 429) and last.status < 500:
                return last
        if last is not None:
            return last
        assert error is not None
        raise error
