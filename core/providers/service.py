"""The providers as the rest of the proxy sees them: the registry (built with the other services,
off the loop), and — once the event loop runs — the caller, the pipeline's router and the task that
keeps each provider's model list fresh (``providers.models_refresh_minutes``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from core.codex.catalog import ModelCatalog
from core.codex.errors import UpstreamError
from core.config import ConfigStore
from core.providers.caller import ProviderCaller
from core.providers.failover import ProviderRouter
from core.providers.model import Provider
from core.providers.registry import ProviderRegistry
from core.store.db import Database
from core.store.providers import ProviderStore
from core.upstream.transport import UpstreamTransport

logger = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 30.0
RETRY_FAILED_SECONDS = 300.0  # a list that failed to load is tried again this much later (or on demand)


class ProviderService:
    def __init__(self, db: Database, config: ConfigStore) -> None:
        """Blocking (SQLite): construct off the event loop."""
        self._config = config
        self.registry = ProviderRegistry(ProviderStore(db), lambda: config.current.providers.key_cooldown_seconds)
        self.caller: ProviderCaller | None = None
        self.router: ProviderRouter | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, transport: UpstreamTransport, catalog: Callable[[], ModelCatalog]) -> None:
        """On the event loop: what calls providers."""
        self.caller = ProviderCaller(self.registry, transport, lambda: self._config.current)
        self.router = ProviderRouter(self.registry, self.caller, catalog)
        self._task = asyncio.ensure_future(self._keep_models_fresh())

    async def refresh_models(self, provider_id: str) -> Provider | None:
        """Ask the provider for its models now; the outcome (the list, or why not) is stored."""
        provider = self.registry.get(provider_id)
        if provider is None or self.caller is None:
            return provider
        try:
            models, error = await self.caller.fetch_models(provider), None
        except Exception as exc:  # any failure is the provider's state to show, not ours to raise
            models, error = None, exc.message if isinstance(exc, UpstreamError) else str(exc)
            logger.info("model list of provider %s: %s", provider_id, error)
        return await asyncio.to_thread(self.registry.set_models, provider_id, models, error)

    def _due(self, provider: Provider, now: float) -> bool:
        if not provider.enabled or not self.registry.keys.usable(provider, now):
            return False
        if provider.models_fetched_at is None:
            return True
        age = now - provider.models_fetched_at
        return age >= (RETRY_FAILED_SECONDS if provider.models_error else self._config.current.providers.models_refresh_minutes * 60)

    async def _keep_models_fresh(self) -> None:
        while True:
            now = time.time()
            for provider in self.registry.all():
                if self._due(provider, now):
                    await self.refresh_models(provider.id)
            await asyncio.sleep(CHECK_EVERY_SECONDS)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def close(self) -> None:
        self.registry.close()
