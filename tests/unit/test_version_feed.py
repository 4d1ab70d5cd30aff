"""The release feed that keeps client.app_version current: a fake npm registry on loopback, the
real transport (curl), a real ConfigStore and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from core.codex.version_feed import FeedError, VersionFeed, feed_version, newer
from core.config import ConfigStore
from core.store.client_state import ClientState
from core.store.db import Database
from core.upstream.transport import UpstreamTransport
from tests.support.release_feed import FakeReleaseFeed, manifest


@pytest.fixture
def feed() -> FakeReleaseFeed:
    server = FakeReleaseFeed("0.172.0").start()
    yield server
    server.stop()


def store(tmp: Path, url: str | None, version: str = "0.171.0") -> ConfigStore:
    config = ConfigStore(tmp, environ={})
    config.update_local({"client": {"app_version": version, "version_feed_url": url}})
    return config


def feed_for(config: ConfigStore, tmp: Path) -> VersionFeed:
    return VersionFeed(config, ClientState(Database(tmp / "codex-proxy.db")))


async def check(feed: VersionFeed, config: ConfigStore) -> None:
    transport = UpstreamTransport(config.current)
    try:
        await feed.check(transport)
    finally:
        await transport.close()


def test_feed_shapes() -> None:
    assert feed_version(json.dumps(manifest("0.180.2", "http://x")).encode()) == "0.180.2"  # npm
    assert feed_version(b'{"tag_name": "rust-v0.175.0", "name": "0.175.0"}') == "0.175.0"  # a GitHub release
    for bad in (b"<html>", b'{"version": "0.180.0-alpha.3"}', b'{"versions": []}', b"[1]"):
        with pytest.raises(FeedError):
            feed_version(bad)
    assert newer("0.172.0", "0.171.0") and newer("0.200.0", "0.99.9") and not newer("0.171.0", "0.171.0")
    assert not newer(None, "0.171.0") and not newer("0.9.0", "0.171.0")


def test_a_newer_release_applies_at_once_and_survives_a_restart(tmp_path: Path, feed: FakeReleaseFeed) -> None:
    config = store(tmp_path, feed.feed_url)
    versions = feed_for(config, tmp_path)
    seen: list[str] = []
    config.on_change(lambda cfg: seen.append(cfg.client.app_version))
    called: list[bool] = []
    versions.on_new_version = lambda: called.append(True)
    asyncio.run(check(versions, config))
    assert config.current.client.app_version == "0.172.0" and seen == ["0.172.0"] and called == [True]
    assert feed.requests[-1]["accept"] == "application/json"
    status = versions.status()
    assert status["version"] == "0.172.0" and status["configured"] == "0.171.0" and status["from_feed"]
    assert status["latest"] == "0.172.0" and status["error"] is None and status["checked_at"] == status["found_at"]
    assert "0.172.0" not in config.local_path.read_text()  # kept in SQLite, not written to local.yaml

    # A new process, feed gone: the kept version applies before any check.
    feed.stop()
    again = store(tmp_path, feed.feed_url)
    assert again.current.client.app_version == "0.171.0"
    assert feed_for(again, tmp_path).status()["version"] == "0.172.0" == again.current.client.app_version


def test_an_unreachable_feed_keeps_the_last_good_version_and_says_so_once(
        tmp_path: Path, feed: FakeReleaseFeed, caplog: pytest.LogCaptureFixture) -> None:
    config = store(tmp_path, feed.feed_url)
    versions = feed_for(config, tmp_path)
    asyncio.run(check(versions, config))
    feed.stop()
    caplog.set_level(logging.INFO, logger="core.codex.version_feed")
    for _ in range(3):
        asyncio.run(check(versions, config))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "keeping Codex client version 0.172.0" in warnings[0].getMessage()
    assert config.current.client.app_version == "0.172.0"
    status = versions.status()
    assert status["error"] and status["latest"] == "0.172.0" and status["checked_at"] > status["found_at"]
    # The failure is kept too: a restart shows it, and says nothing new until the feed answers.
    assert feed_for(store(tmp_path, feed.feed_url), tmp_path).status()["error"] == status["error"]


def test_errors_and_nonsense_change_nothing(tmp_path: Path, feed: FakeReleaseFeed, caplog: pytest.LogCaptureFixture) -> None:
    config = store(tmp_path, feed.feed_url)
    versions = feed_for(config, tmp_path)
    feed.status = 503
    caplog.set_level(logging.INFO, logger="core.codex.version_feed")
    asyncio.run(check(versions, config))
    assert versions.state.error == "the feed answered HTTP 503" and config.current.client.app_version == "0.171.0"
    feed.status, feed.version = 200, "0.180.0-alpha.1"
    asyncio.run(check(versions, config))
    assert "no release version" in (versions.state.error or "") and config.current.client.app_version == "0.171.0"
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1
    feed.version = "0.173.1"
    asyncio.run(check(versions, config))
    assert config.current.client.app_version == "0.173.1" and versions.state.error is None
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_a_newer_configured_version_wins_and_no_feed_means_no_check(tmp_path: Path, feed: FakeReleaseFeed) -> None:
    config = store(tmp_path, feed.feed_url, version="0.190.0")
    versions = feed_for(config, tmp_path)
    asyncio.run(check(versions, config))
    assert config.current.client.app_version == "0.190.0" and versions.state.latest == "0.172.0"
    assert not versions.status()["from_feed"]
    quiet = tmp_path / "quiet"
    off = store(quiet, None)
    asyncio.run(check(feed_for(off, quiet), off))
    assert len(feed.requests) == 1 and off.current.client.app_version == "0.171.0"
