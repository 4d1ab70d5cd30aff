"""Health checks of the proxy pool: every ``proxies.check_interval_minutes``, when a proxy is added
or changed, on demand, and soon after a call through a proxy fails.

Changing the ``proxies`` settings checks every proxy again at once, with the new ones.

A check fetches ``proxies.check_url`` through the proxy with the same transport the accounts use
(libcurl): it passes when an answer comes back, its time is the proxy's latency and the address
the answer names is the exit IP. With no check URL, a check only connects to the proxy. The result
goes to the pool (core/accounts/proxy_pool.py), which moves or stops the accounts concerned.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Coroutine, Iterable
from typing import Any

from core.accounts.proxies import Proxy, exit_ip_of
from core.accounts.proxy_pool import ProxyPool
from core.codex.errors import UpstreamError
from core.config import ConfigStore
from core.settings import Settings
from core.upstream.transport import UpstreamTransport

logger = logging.getLogger(__name__)

PARALLEL_CHECKS = 8
SUSPECT_AFTER = 1.0  # a failed call re-checks its proxy unless a check ran less than this long ago
_TRANSPORT_PREFIX = "error sending request to upstream: "


class ProxyHealth:
    def __init__(self, config: ConfigStore, proxies: ProxyPool, transport: UpstreamTransport) -> None:
        self._config = config
        self._proxies = proxies
        self._transport = transport
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[str, asyncio.Task[Proxy | None]] = {}
        self._checked_at: dict[str, float] = {}  # monotonic time of each proxy's last check
        self._tasks: set[asyncio.Task[Any]] = set()
        self._semaphore = asyncio.Semaphore(PARALLEL_CHECKS)
        self._wake = asyncio.Event()
        self._settings = config.current.proxies

    def start(self) -> None:
        """On the loop: check every enabled proxy now, then on the schedule."""
        loop = self._loop = asyncio.get_running_loop()
        self._config.on_change(lambda cfg: loop.call_soon_threadsafe(self._settings_changed, cfg))
        self._spawn(self._schedule())

    def _settings_changed(self, cfg: Settings) -> None:
        if cfg.proxies != self._settings:
            self._settings = cfg.proxies
            self._wake.set()

    def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        assert self._loop is not None
        # A fresh context: a check started from a turn must not show up as that turn's upstream leg.
        task = self._loop.create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _schedule(self) -> None:
        while True:
            try:
                await self.check_many(self._proxies.ids(enabled_only=True))
            except Exception:
                logger.exception("scheduled proxy checks failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._config.current.proxies.check_interval_minutes * 60)
            except TimeoutError:
                pass

    # --- asking for checks ---------------------------------------------------------------------------

    def soon(self, proxy_ids: Iterable[str]) -> None:
        """From any thread: check these proxies in the background (added or changed ones)."""
        ids = list(proxy_ids)
        if self._loop is not None and ids:
            self._loop.call_soon_threadsafe(lambda: self._spawn(self.check_many(ids)))

    def suspect(self, url: str) -> None:
        """On the loop: a call through the proxy at ``url`` failed; check it unless that just happened."""
        proxy_id = self._proxies.proxy_of_url(url)
        if proxy_id is None or proxy_id in self._running:
            return
        if time.monotonic() - self._checked_at.get(proxy_id, -SUSPECT_AFTER) < SUSPECT_AFTER:
            return
        self._spawn(self.check(proxy_id))

    async def check_many(self, proxy_ids: Iterable[str]) -> list[Proxy]:
        results = await asyncio.gather(*(self.check(i) for i in dict.fromkeys(proxy_ids)))
        return [r for r in results if r is not None]

    async def check(self, proxy_id: str) -> Proxy | None:
        """Check one proxy now (joining a check already running); returns it as recorded, or None
        if it does not exist. Never cancelled by a caller going away."""
        task = self._running.get(proxy_id)
        if task is None:
            task = self._running[proxy_id] = asyncio.get_running_loop().create_task(self._check(proxy_id),
                                                                                    context=contextvars.Context())
            task.add_done_callback(lambda _: self._running.pop(proxy_id, None))
        return await asyncio.shield(task)

    async def _check(self, proxy_id: str) -> Proxy | None:
        proxy = self._proxies.get(proxy_id)
        if proxy is None:
            return None
        async with self._semaphore:
            try:
                error, latency_ms, exit_ip = await self._probe(proxy)
            except Exception as exc:  # a check must never take anything down
                logger.exception("checking proxy %s failed unexpectedly", proxy.label)
                error, latency_ms, exit_ip = f"{type(exc).__name__}: {exc}", None, None
        self._checked_at[proxy_id] = time.monotonic()
        return self._proxies.record_check(proxy_id, error, latency_ms, exit_ip)

    async def _probe(self, proxy: Proxy) -> tuple[str | None, float | None, str | None]:
        """(what failed or None, latency in ms, exit IP) of one proxy."""
        settings = self._config.current.proxies
        timeout = settings.check_timeout_seconds
        started = time.monotonic()
        if not settings.check_url:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(proxy.host, proxy.port), timeout)
            except (OSError, TimeoutError) as exc:
                return f"cannot connect to {proxy.address}: {exc or 'timed out'}", None, None
            writer.close()
            return None, (time.monotonic() - started) * 1000, None
        try:
            reply = await self._transport.request("GET", settings.check_url, {"Accept": "application/json, text/plain"},
                                                  timeout=timeout, proxy=proxy.url())  # fmt: skip
        except UpstreamError as exc:
            return exc.message.removeprefix(_TRANSPORT_PREFIX), None, None
        latency_ms = (time.monotonic() - started) * 1000
        if reply.status == 407:
            return "the proxy refused its credentials (407 Proxy Authentication Required)", None, None
        if reply.status >= 400:
            return f"the check URL answered HTTP {reply.status} through the proxy", None, None
        return None, latency_ms, exit_ip_of(reply.body)
