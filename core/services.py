"""The process-wide services both planes share: config, store (SQLite, or PostgreSQL shared with
other instances), account pool, catalog, upstream transport and pipeline. Built once at start-up;
the data plane (addon, on mitmproxy's event loop) and the control plane (Flask, on worker threads)
hold the same instance."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from core.access.guard import KeyGuard
from core.access.service import KeyService
from core.accounts import oauth, quota
from core.accounts.backend import AccountBackend
from core.accounts.login import LoginService
from core.accounts.oauth import TokenSet
from core.accounts.pool import AccountPool
from core.accounts.proxy_health import ProxyHealth
from core.accounts.proxy_pool import ProxyPool
from core.accounts.service import AccountService
from core.accounts.tokens import TokenManager
from core.codex.catalog import ModelCatalog
from core.codex.version_feed import VersionFeed
from core.config import ConfigStore
from core.pricing import Pricing
from core.providers.service import ProviderService
from core.settings import Settings
from core.turn.pipeline import Pipeline
from core.store.accounts import AccountStore
from core.store.affinity import AffinityStore
from core.store.bodies import BodyLog
from core.store.client_keys import ClientKeyStore
from core.store.client_state import ClientState
from core.store.proxies import ProxyStore
from core.store.opening import open_database
from core.store.request_log import RequestLog
from core.upstream.transport import UpstreamTransport

T = TypeVar("T")
logger = logging.getLogger(__name__)


def _installation_id(data_dir: Path) -> str:
    path = data_dir / "installation_id"
    if path.exists() and (value := path.read_text().strip()):
        return value
    value = str(uuid.uuid4())
    path.write_text(value + "\n")
    return value


class Services:
    def __init__(self, data_dir: Path | None = None, runtime_config: dict[str, Any] | None = None) -> None:
        """Blocking (files, SQLite migrations): construct off the event loop."""
        self.config = ConfigStore(data_dir, runtime=runtime_config)
        cfg = self.config.current
        self.db = open_database(cfg)
        logger.info("store: %s", self.db.describe())
        self.account_store = AccountStore(self.db)
        self.pool = AccountPool(self.account_store, AffinityStore(self.db), self.config)
        self.pool.load()
        self.proxies = ProxyPool(ProxyStore(self.db))
        self.proxies.load()
        self.pool.gate = self.proxies.blocked  # an account whose proxy cannot be used does not serve
        self.pool.on_change(self._account_changed)
        self.accounts = AccountService(self.account_store, self.pool, self._refresh_blocking)
        self.request_log = RequestLog(self.db, lambda: self.cfg.logs.retention_days)
        self.bodies = BodyLog(self.db, cfg.logs.bodies_kept)
        self.client_keys = ClientKeyStore(self.db)
        self.key_guard = KeyGuard(self.client_keys)
        self.keys = KeyService(self.client_keys, self.key_guard)
        self.pricing = Pricing(cfg.pricing.models)
        self.providers = ProviderService(self.db, self.config)
        self.catalog = ModelCatalog.from_config(cfg, self.providers.registry)
        self.installation_id = _installation_id(cfg.data_dir)
        self.version_feed = VersionFeed(self.config, ClientState(self.db))  # applies the version kept last time
        self.config.on_change(self._config_changed)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.transport: UpstreamTransport | None = None
        self.tokens: TokenManager | None = None
        self.backend: AccountBackend | None = None
        self.pipeline: Pipeline | None = None
        self.proxy_health: ProxyHealth | None = None
        self.login = LoginService(self.config, self.accounts, self.run_on_loop, lambda: self.transport)

    @property
    def cfg(self) -> Settings:
        return self.config.current

    def _account_changed(self, account_id: str) -> None:
        if self.pool.get(account_id) is None:
            self.proxies.forget(account_id)  # its assignment row went with it

    def _config_changed(self, cfg: Settings) -> None:
        self.catalog = ModelCatalog.from_config(cfg, self.providers.registry)
        self.bodies.keep = cfg.logs.bodies_kept
        self.pricing = Pricing(cfg.pricing.models)

    async def start(self) -> None:
        """Create what must live on the event loop (the curl_cffi session, the token timers), then
        recover refreshes a previous process left half-done."""
        loop = self.loop = asyncio.get_running_loop()
        self.transport = UpstreamTransport(self.cfg)
        route = self.proxies.route
        self.tokens = TokenManager(self.config, self.pool, self.account_store, self.transport, route)
        self.backend = backend = AccountBackend(self.config, self.pool, self.tokens, self.transport, route)
        self.providers.start(self.transport, lambda: self.catalog)
        self.pipeline = Pipeline(self.config, self.pool, self.tokens, self.transport, self.installation_id, route, self.providers.router)
        self.proxy_health = ProxyHealth(self.config, self.proxies, self.transport)
        self.transport.proxy_failed = self.proxy_health.suspect
        self.proxy_health.start()
        self.proxies.on_new(self.proxy_health.soon)  # proxies another instance added: checked from here too
        await self.tokens.start()
        self.version_feed.on_new_version = self._new_client_version
        self.version_feed.start(self.transport)
        backend.refresh_catalogs()
        self.pool.on_change(lambda _: loop.call_soon_threadsafe(backend.refresh_catalogs))
        self.pool.on_change(lambda account_id: loop.call_soon_threadsafe(self._close_sockets_of, account_id))
        self.db.events.start()  # from now on, what other instances sharing the store change arrives

    def _close_sockets_of(self, account_id: str) -> None:
        """On the loop (sockets are the loop's): a removed account's open WebSockets go with it."""
        if self.pipeline is not None and self.pool.get(account_id) is None:
            self.pipeline.sockets.drop(account_id)

    def _new_client_version(self) -> None:
        """The backend may list more models to the new version: ask for every plan's list again."""
        self.pool.plans.expire()
        if self.backend is not None:
            self.backend.refresh_catalogs()

    async def stop(self) -> None:
        self.version_feed.stop()
        if self.tokens is not None:
            self.tokens.stop()
        if self.pipeline is not None:
            self.pipeline.close()
        await self.providers.stop()
        if self.proxy_health is not None:
            self.proxy_health.stop()
        if self.transport is not None:
            await self.transport.close()
        await asyncio.to_thread(self.close_sync)

    def close_sync(self) -> None:
        self.login.close()
        self.request_log.close()
        self.bodies.close()
        self.providers.close()
        self.client_keys.close()
        self.pool.close()
        self.proxies.close()
        self.db.close()

    def pooled_quota(self) -> dict[str, Any]:
        """The pool's remaining quota seen as one account (core.accounts.quota.pooled)."""
        return quota.pooled(self.pool.members(), time.time())

    def _refresh_blocking(self, refresh_token: str) -> TokenSet:
        assert self.transport is not None
        return self.run_on_loop(oauth.refresh(self.transport, self.cfg, refresh_token))

    def run_on_loop(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """From a control-plane thread: run ``coro`` on the data plane's loop and wait for it."""
        if self.loop is None:
            coro.close()
            raise RuntimeError("the proxy is not running yet")
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)
