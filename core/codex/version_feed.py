"""Keeping ``client.app_version`` current: the official release feed, asked on a schedule.

The backend hides newer models from older client versions, so the version the proxy presents
(``version`` header, User-Agent, ``client_version`` of the model list) must follow the CLI's
releases. Every ``client.version_check_minutes`` the feed at ``client.version_feed_url`` is asked
(npm's ``@openai/codex/latest`` by default: JSON with ``version``; a GitHub release's
``tag_name`` works too). A newer release than the configured version becomes a process-only
override of ``client.app_version`` (ConfigStore.set_runtime): every reader sees it at once, and it
is kept in SQLite so a restart without network starts from it. A feed that cannot be reached or
answers nonsense leaves the last good version in place; that is logged once, not at every check.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson

from core.codex.errors import UpstreamError
from core.config import ConfigStore
from core.store.client_state import ClientState
from core.upstream.transport import UpstreamTransport

logger = logging.getLogger(__name__)

STATE_KEY = "client_version"
_VERSION = re.compile(r"^(?:rust-)?v?(\d+)\.(\d+)\.(\d+)$")  # stable releases only (no -alpha.N)


class FeedError(ValueError):
    """The feed answered, but not with a release version."""


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(text.strip())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def feed_version(body: bytes) -> str:
    """The release a feed's JSON names: npm's ``version`` or GitHub's ``tag_name`` (``rust-v0.171.0``)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FeedError("the feed did not answer JSON") from None
    raw = data.get("version") or data.get("tag_name") if isinstance(data, dict) else None
    numbers = parse_version(raw) if isinstance(raw, str) else None
    if numbers is None:
        raise FeedError(f"the feed names no release version ({str(raw)[:40]!r})")
    return ".".join(map(str, numbers))


def newer(candidate: str | None, than: str) -> bool:
    a, b = parse_version(candidate or ""), parse_version(than)
    return a is not None and (b is None or a > b)


@dataclass(frozen=True, slots=True)
class FeedState:
    latest: str | None = None  # the last release the feed named
    found_at: float | None = None  # when it was last read successfully
    checked_at: float | None = None  # the last attempt, good or not
    error: str | None = None  # why the last attempt failed (None: it worked)


class VersionFeed:
    def __init__(self, config: ConfigStore, state: ClientState) -> None:
        """Blocking (SQLite): construct off the event loop. Applies the version kept last time."""
        self._config = config
        self._store = state
        self._configured = config.current.client.app_version  # before any override of ours
        saved = state.get(STATE_KEY) or {}
        self.state = FeedState(**{k: saved.get(k) for k in FeedState.__dataclass_fields__})
        self._failing = self.state.error is not None
        self._apply(self.state.latest)
        self._task: asyncio.Task[None] | None = None
        self.on_new_version: Callable[[], None] | None = None  # on the loop, after a new version applied

    def status(self) -> dict[str, Any]:
        """For the dashboard: what is sent, where it came from, what the feed said last."""
        cfg = self._config.current
        return {"version": cfg.client.app_version, "configured": self._configured,
                "from_feed": cfg.client.app_version != self._configured, "feed_url": cfg.client.version_feed_url,
                "interval_minutes": cfg.client.version_check_minutes, **asdict(self.state)}

    def _apply(self, latest: str | None) -> bool:
        """Blocking: override client.app_version when the feed's release is newer than configured;
        True when the version sent changed."""
        wanted = latest if newer(latest, self._configured) else None
        if (wanted or self._configured) == self._config.current.client.app_version:
            return False
        self._config.set_runtime("client.app_version", wanted)
        logger.info("Codex client version now %s (%s)", wanted or self._configured,
                    "release feed" if wanted else "configured")
        return True

    def _save(self) -> None:
        self._store.put(STATE_KEY, asdict(self.state))

    async def check(self, transport: UpstreamTransport) -> FeedState:
        """Ask the feed once, keep and apply what it says; never raises for a feed problem."""
        url = self._config.current.client.version_feed_url
        if not url:
            return self.state
        now = time.time()
        try:
            reply = await transport.request("GET", url, {"accept": "application/json"}, timeout=30.0)
            if reply.status != 200:
                raise FeedError(f"the feed answered HTTP {reply.status}")
            latest = feed_version(reply.body)
        except (UpstreamError, FeedError) as exc:  # the last good version stays
            message = exc.message if isinstance(exc, UpstreamError) else str(exc)
            self.state = replace(self.state, checked_at=now, error=message)
            if not self._failing:
                self._failing = True
                logger.warning("release feed %s failed (%s); keeping Codex client version %s", url, message,
                               self._config.current.client.app_version)
            await asyncio.to_thread(self._save)
            return self.state
        if self._failing:
            self._failing = False
            logger.info("release feed %s answers again", url)
        self.state = FeedState(latest=latest, found_at=now, checked_at=now, error=None)
        if await asyncio.to_thread(self._persist_and_apply, latest) and self.on_new_version is not None:
            self.on_new_version()
        return self.state

    def _persist_and_apply(self, latest: str) -> bool:
        self._save()
        return self._apply(latest)

    def start(self, transport: UpstreamTransport) -> None:
        """On the loop: check now, then every ``client.version_check_minutes`` (read each time)."""
        async def run() -> None:
            while True:
                await self.check(transport)
                await asyncio.sleep(self._config.current.client.version_check_minutes * 60)

        self._task = asyncio.get_running_loop().create_task(run(), name="release-feed")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
