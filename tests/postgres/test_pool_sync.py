"""Two account pools in one test process, each on its own connections to one real PostgreSQL — two
instances as far as the store can tell: what one changes reaches the other, never over a change
of the other's own that is still on its way to the database; conversations follow across."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.accounts.model import Account
from core.accounts.pool import AccountPool
from core.accounts.quota import Quota, Window
from core.config import ConfigStore
from core.store.accounts import AccountStore
from core.store.affinity import AffinityStore
from core.store.postgres import PostgresDatabase


class GatedStore(AccountStore):
    """State writes wait at a gate while it is closed (an instance whose writer is slow)."""

    def __init__(self, db: PostgresDatabase) -> None:
        super().__init__(db)
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def write_states(self, states: dict[str, dict[str, Any]]) -> None:
        if not self.gate.is_set():
            self.waiting.set()
            self.gate.wait(10)
        super().write_states(states)


Instance = tuple[AccountPool, GatedStore]


@pytest.fixture
def instances(pg_url: str, tmp_path: Path) -> Iterator[Callable[[], Instance]]:
    opened: list[tuple[AccountPool, PostgresDatabase]] = []

    def start() -> Instance:
        db = PostgresDatabase(pg_url, 3)
        store = GatedStore(db)
        pool = AccountPool(store, AffinityStore(db), ConfigStore(tmp_path / f"instance-{len(opened)}", environ={}))
        pool.load()
        db.events.start()
        opened.append((pool, db))
        return pool, store

    yield start
    for pool, db in opened:
        pool.close()
        db.close()


def eventually(probe: Callable[[], Any], timeout: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"not within {timeout}s"
        time.sleep(0.01)
    return value


def new_account(pool: AccountPool, store: AccountStore, account_id: str) -> Account:
    account = Account(id=account_id, chatgpt_account_id=account_id, access_token="at", refresh_token="rt", expires_at=time.time() + 3600)
    store.upsert(account)
    return pool.put(account)


def test_a_change_reaches_the_other_instance_but_not_over_its_own_unwritten_one(instances: Callable[[], Instance]) -> None:
    (first, first_store), (second, second_store) = instances(), instances()
    new_account(first, first_store, "acct_a")
    mine = eventually(lambda: second.get("acct_a"))

    second_store.gate.clear()  # the second instance's next state write is held back
    second.update(mine, status="cooldown", cooldown_until=time.time() + 100)
    assert second_store.waiting.wait(5)
    theirs = first.get("acct_a")
    assert theirs is not None
    first.record_quota(theirs, Quota(time.time(), primary=Window(42.0, 300, time.time() + 3600)))
    eventually(lambda: mine.quota is not None)  # the first's quota arrived...
    assert mine.status == "cooldown" and mine.quota is not None and mine.quota.primary.used_percent == 42.0  # type: ignore[union-attr]

    second_store.gate.set()  # ...and its own cooldown, once written, reaches the first
    eventually(lambda: theirs.status == "cooldown")
    stored = first_store.get("acct_a")
    assert stored is not None and stored.status == "cooldown" and stored.quota is not None


def test_accounts_added_renewed_and_removed_elsewhere(instances: Callable[[], Instance]) -> None:
    (first, first_store), (second, _) = instances(), instances()
    renewed: list[str] = []
    second.on_change(renewed.append)
    new_account(first, first_store, "acct_b")
    eventually(lambda: second.get("acct_b"))
    first_store.claim_refresh("acct_b", "first", lambda holder, started: False)
    first_store.commit_tokens("acct_b", {"access_token": "at-2", "refresh_token": "rt-2"}, {})
    eventually(lambda: second.get("acct_b").access_token == "at-2")  # type: ignore[union-attr]
    assert renewed.count("acct_b") == 2  # added, then new tokens: the token timers hear of both
    first_store.delete(["acct_b"])
    eventually(lambda: second.get("acct_b") is None)


def test_a_conversation_follows_whichever_instance_it_reaches(instances: Callable[[], Instance]) -> None:
    (first, first_store), (second, _) = instances(), instances()
    for name in ("acct_1", "acct_2"):
        new_account(first, first_store, name)
    eventually(lambda: len(second.all()) == 2)

    account = first.choose("gpt-5.4", "conversation-x")
    assert account is not None
    first.bind("conversation-x", account)
    assert first.flush()
    asyncio.run(second.recall("conversation-x"))  # the second has not seen it: it looks it up
    for _ in range(3):
        chosen = second.choose("gpt-5.4", "conversation-x")
        assert chosen is not None and chosen.id == account.id
        second.release(chosen)
        second.bind("conversation-x", chosen)

    other = next(a for a in first.all() if a.id != account.id)
    first.bind("conversation-x", other)  # moved (the first account failed, say): the second hears of it
    eventually(lambda: (c := second.choose("gpt-5.4", "conversation-x")) is not None and second.release(c) is None and c.id == other.id)
