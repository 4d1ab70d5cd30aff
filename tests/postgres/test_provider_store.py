"""The providers' store on both dialects, and a change made on one instance reaching another that
shares the PostgreSQL database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.providers.keys import KEY_RATE_LIMITED
from core.providers.model import ProviderModel, Route, Target
from core.providers.registry import ProviderRegistry
from core.store.db import Database
from core.store.postgres import PostgresDatabase
from core.store.providers import ProviderStore


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    db: Database = Database(tmp_path / "store.db") if request.param == "sqlite" else PostgresDatabase(request.getfixturevalue("pg_url"), 4)
    yield db
    db.close()


def wait_until(probe: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_provider_store_round_trip_is_the_same(database: Database) -> None:
    registry = ProviderRegistry(ProviderStore(database), lambda: 60)
    added = registry.add({"kind": "anthropic", "keys": ["sk-ant-api03-aaaaaaaaaaaa", "sk-ant-api03-bbbbbbbbbbbb"]})
    registry.add({"id": "local", "kind": "custom", "base_url": "http://127.0.0.1:8000/v1", "models": ["qwen"]})
    registry.set_models("anthropic", [ProviderModel("claude-x", "Claude X", 200000)], None)
    registry.set_routes([{"pattern": "c-*", "targets": ["anthropic:claude-x", "chatgpt"]}, {"pattern": "q", "targets": ["local"]}])
    registry.keys.record(added.keys[1], KEY_RATE_LIMITED, "slow down", retry_after=30)
    registry.update_key("anthropic", added.keys[0].id, {"label": "main"})
    registry.states.flush()

    again = ProviderRegistry(ProviderStore(database), lambda: 60)
    loaded = again.get("anthropic")
    assert loaded is not None and [m.id for m in loaded.fetched_models] == ["claude-x"] and loaded.fetched_models[0].context_window == 200000
    assert [(k.key, k.label) for k in loaded.keys] == [("sk-ant-api03-aaaaaaaaaaaa", "main"), ("sk-ant-api03-bbbbbbbbbbbb", None)]
    assert loaded.keys[1].cooldown_until and loaded.keys[1].last_error == "slow down"
    assert [p.id for p in again.all()] == ["anthropic", "local"]
    assert again.routes == [Route("c-*", (Target("anthropic", "claude-x"), Target("chatgpt"))), Route("q", (Target("local"),))]
    again.delete("local")
    assert [r.pattern for r in ProviderRegistry(ProviderStore(database), lambda: 60).routes] == ["c-*"]
    registry.close()
    again.close()


def test_a_change_reaches_the_other_instance(pg_url: str) -> None:
    first, second = PostgresDatabase(pg_url, 2), PostgresDatabase(pg_url, 2)
    mine, theirs = ProviderRegistry(ProviderStore(first), lambda: 60), ProviderRegistry(ProviderStore(second), lambda: 60)
    heard: list[str] = []
    theirs.on_change(lambda: heard.append("changed"))
    for db in (first, second):
        db.events.start()
    mine.add({"kind": "openrouter", "keys": ["sk-or-v1-cccccccccccc"]})
    wait_until(lambda: theirs.get("openrouter") is not None)
    mine.set_routes([{"pattern": "fast", "targets": ["openrouter:meta/llama"]}])
    wait_until(lambda: theirs.table.match("fast") is not None)
    assert theirs.table.match("fast").targets == (Target("openrouter", "meta/llama"),)  # type: ignore[union-attr]
    assert heard
    for registry in (mine, theirs):
        registry.close()
    first.close()
    second.close()
