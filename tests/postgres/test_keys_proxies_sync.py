"""Client keys and the proxy pool across instances: each instance below has its own connections to
one real PostgreSQL (as far as the store can tell, another process). A key created, changed or
deleted on one is known to the others within a second; spending through several adds up in the
database and in every instance's counters, so a budget holds across them; a proxy or an
assignment made on one reaches the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from core.access.guard import KeyGuard
from core.access.keys import ClientKey, period_end, period_start
from core.access.service import KeyService
from core.accounts.model import Account
from core.accounts.proxy_pool import ProxyPool
from core.protocols.base import TooManyRequests, Unauthorized
from core.store import client_keys
from core.store.accounts import AccountStore
from core.store.client_keys import ClientKeyStore, SpendDelta
from core.store.postgres import PostgresDatabase
from core.store.proxies import ProxyStore
from tests.support.accounts import wait_for

SETTLED = 1.0  # a change made on one instance is seen by the others within this
SPENT = 1.5  # spending, which waits up to client_keys.LINGER_SECONDS on its writer first


class GatedKeyStore(ClientKeyStore):
    """Spending writes wait at a gate while it is closed (an instance whose writer is slow)."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.gate = threading.Event()
        self.gate.set()
        super().__init__(db)

    def _write_spend(self, deltas: list[SpendDelta]) -> None:
        self.gate.wait(10)
        super()._write_spend(deltas)


@dataclass
class Instance:
    db: PostgresDatabase
    store: GatedKeyStore
    keys: KeyService
    proxies: ProxyPool
    new_proxies: list[str]  # what on_new reported

    @property
    def guard(self) -> KeyGuard:
        return self.keys.guard

    def spent(self, key_id: str, now: float | None = None) -> tuple[int, float]:
        used = self.guard.state(self.key(key_id), now)["spent"]
        return used["tokens"], used["usd"]

    def key(self, key_id: str) -> ClientKey:
        """The key as this instance knows it now (what a request's ``identify`` finds)."""
        key = self.guard.get(key_id)
        assert key is not None
        return key

    def turn(self, key_id: str, tokens: int, usd: float = 0.0, now: float | None = None) -> None:
        """One turn of the key: admitted (or refused), charged, released."""
        self.guard.admit(self.key(key_id), "gpt-5.4", "gpt-5.4", now)
        self.guard.charge(key_id, tokens, usd, now)
        self.guard.release(key_id)


@pytest.fixture
def instances(pg_url: str) -> Iterator[Callable[[], Instance]]:
    opened: list[Instance] = []

    def start() -> Instance:
        db = PostgresDatabase(pg_url, 3)
        store = GatedKeyStore(db)
        proxies = ProxyPool(ProxyStore(db))
        proxies.load()
        instance = Instance(db, store, KeyService(store, KeyGuard(store)), proxies, [])
        proxies.on_new(instance.new_proxies.extend)
        db.events.start()
        opened.append(instance)
        return instance

    yield start
    for instance in opened:
        instance.store.gate.set()
        instance.store.close()
        instance.proxies.close()
        instance.db.close()


def stored(pg_url: str, key_id: str) -> dict[str, Any]:
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM client_keys WHERE id = %s", [key_id]).fetchone()
    assert row is not None
    return row


def refused(instance: Instance, key_id: str) -> bool:
    try:
        instance.guard.admit(instance.key(key_id), "gpt-5.4", "gpt-5.4")
    except TooManyRequests as exc:
        assert exc.code == "budget_exceeded"
        return True
    instance.guard.release(key_id)
    return False


def identified(instance: Instance, secret: str) -> ClientKey | str:
    """The key ``secret`` is on ``instance``, or the code it is refused with."""
    try:
        return instance.guard.identify(secret)
    except Unauthorized as exc:
        return exc.code


# --- client keys ----------------------------------------------------------------------------------


def test_a_key_created_changed_and_deleted_on_one_instance_reaches_the_other(instances: Callable[[], Instance]) -> None:
    first, second = instances(), instances()
    state, secret = first.keys.create({"label": "shared", "allowed_models": ["gpt-5.4*"]})
    key = wait_for(lambda: isinstance(k := identified(second, secret), ClientKey) and k, timeout=SETTLED, what="the key on the second")
    assert key.id == state["id"] and key.allows("gpt-5.4-mini") and not key.allows("claude-sonnet-4-6")

    first.keys.update(key.id, {"enabled": False})
    wait_for(lambda: identified(second, secret) == "key_disabled", timeout=SETTLED, what="the key disabled on the second")
    first.keys.update(key.id, {"enabled": True, "label": "renamed", "allowed_models": None})
    changed = wait_for(lambda: isinstance(k := identified(second, secret), ClientKey) and k.label == "renamed" and k,
                       timeout=SETTLED, what="the key enabled again")  # fmt: skip
    assert changed.allows("claude-sonnet-4-6") and second.keys.show(key.id)["status"] == "active"  # type: ignore[index]

    second.keys.delete(key.id)  # either way round
    wait_for(lambda: identified(first, secret) == "invalid_api_key", timeout=SETTLED, what="the key gone on the first")
    assert first.keys.list() == [] and second.keys.list() == []


def test_spending_through_two_instances_adds_up(instances: Callable[[], Instance], pg_url: str) -> None:
    first, second = instances(), instances()
    state, _ = first.keys.create({"label": "both"})
    key = wait_for(lambda: second.guard.get(state["id"]), timeout=SETTLED, what="the key on the second")
    first.turn(key.id, 100, 0.25)
    second.turn(key.id, 40, 0.5)
    assert first.store.flush() and second.store.flush()
    row = stored(pg_url, key.id)
    assert (row["spent_tokens"], row["spent_usd"]) == (140, 0.75)  # neither overwrote the other
    for instance in (first, second):
        wait_for(lambda i=instance: i.spent(key.id) == (140, 0.75), timeout=SPENT, what="both counters on each instance")

    second.store.gate.clear()  # the second's next write is held back: charged here, not stored yet
    second.turn(key.id, 7)
    first.turn(key.id, 3)
    wait_for(lambda: second.spent(key.id) == (150, 0.75), timeout=SPENT, what="the first's turn on the second")
    assert stored(pg_url, key.id)["spent_tokens"] == 143
    second.store.gate.set()
    wait_for(lambda: first.spent(key.id) == (150, 0.75), timeout=SPENT, what="the second's turn on the first")
    assert second.spent(key.id) == (150, 0.75)  # its own turn was not counted twice once written


def test_concurrent_writes_from_both_instances_lose_nothing(instances: Callable[[], Instance], pg_url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(client_keys, "LINGER_SECONDS", 0.0)  # a write per turn or two: as many commits as can race
    first, second = instances(), instances()
    state, _ = first.keys.create({"label": "busy"})
    key = wait_for(lambda: second.guard.get(state["id"]), timeout=SETTLED, what="the key on the second")
    turns = 150

    def charge(instance: Instance) -> None:
        for _ in range(turns):
            instance.turn(key.id, 1, 0.001)
            time.sleep(0.001)

    threads = [threading.Thread(target=charge, args=(instance,)) for instance in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert first.store.flush() and second.store.flush()
    row = stored(pg_url, key.id)
    assert row["spent_tokens"] == 4 * turns and row["spent_usd"] == pytest.approx(4 * turns * 0.001)
    assert row["spend_version"] > 20  # many writes of each instance met in the database
    for instance in (first, second):
        wait_for(lambda i=instance: i.spent(key.id)[0] == 4 * turns, timeout=SPENT, what="the whole count on each instance")
        assert instance.spent(key.id)[1] == pytest.approx(4 * turns * 0.001)


def test_a_budget_reached_through_both_instances_is_enforced_by_both(instances: Callable[[], Instance]) -> None:
    first, second = instances(), instances()
    state, _ = first.keys.create({"label": "capped", "budget": {"limit": 100, "unit": "tokens", "period": "day"}})
    key = wait_for(lambda: second.guard.get(state["id"]), timeout=SETTLED, what="the key on the second")
    first.turn(key.id, 60)
    wait_for(lambda: second.spent(key.id)[0] == 60, timeout=SPENT, what="the first's spending on the second")
    assert not refused(first, key.id) and not refused(second, key.id)  # 60 of 100
    second.turn(key.id, 50)  # 110 of 100, neither alone over it
    assert refused(second, key.id)
    started = time.monotonic()
    wait_for(lambda: refused(first, key.id), timeout=SPENT, what="the first to refuse the key")
    assert time.monotonic() - started < SPENT
    assert first.keys.show(key.id)["status"] == second.keys.show(key.id)["status"] == "over_budget"  # type: ignore[index]

    first.keys.update(key.id, {"budget": {"limit": 200, "unit": "tokens", "period": "day"}})  # same period: the count stays
    wait_for(lambda: not refused(second, key.id), timeout=SETTLED, what="the raised budget on the second")
    assert second.spent(key.id)[0] == 110


def test_a_reset_or_a_new_period_restarts_the_counters_on_every_instance(instances: Callable[[], Instance], pg_url: str) -> None:
    first, second = instances(), instances()
    state, _ = first.keys.create({"label": "daily", "budget": {"limit": 1000, "unit": "tokens", "period": "day"}})
    key = wait_for(lambda: second.guard.get(state["id"]), timeout=SETTLED, what="the key on the second")
    today = time.time()
    first.turn(key.id, 300, now=today)
    wait_for(lambda: second.spent(key.id) == (300, 0.0), timeout=SPENT, what="the first's turn on the second")

    second.store.gate.clear()
    second.turn(key.id, 20, now=today)  # charged before the reset, written after it: it does not count
    first.keys.reset(key.id)
    wait_for(lambda: second.spent(key.id) == (0, 0.0), timeout=SETTLED, what="the reset on the second")
    second.store.gate.set()
    assert second.store.flush()
    assert stored(pg_url, key.id)["spent_tokens"] == 0 and first.spent(key.id) == (0, 0.0)

    first.turn(key.id, 200, now=today)
    wait_for(lambda: second.spent(key.id) == (200, 0.0), timeout=SPENT, what="the first's turn after the reset")
    tomorrow = period_end("day", period_start("day", today)) + 60  # type: ignore[operator]
    second.store.gate.clear()
    second.turn(key.id, 30, now=today)  # still today here; written once the first has begun tomorrow
    first.turn(key.id, 5, now=tomorrow)
    assert first.store.flush()
    row = stored(pg_url, key.id)
    assert (row["spent_tokens"], row["period_start"]) == (5, period_start("day", tomorrow))  # started over at the new day's turn
    wait_for(lambda: second.spent(key.id, now=tomorrow) == (5, 0.0), timeout=SETTLED, what="the new day on the second")
    second.store.gate.set()
    assert second.store.flush()
    assert stored(pg_url, key.id)["spent_tokens"] == 5  # yesterday's late turn counted for yesterday, not today
    assert first.spent(key.id, now=tomorrow) == second.spent(key.id, now=tomorrow) == (5, 0.0)

    first.keys.update(key.id, {"budget": {"limit": 1000, "unit": "tokens", "period": "month"}})  # a new period: counters restart
    wait_for(lambda: second.spent(key.id, now=tomorrow) == (0, 0.0), timeout=SETTLED, what="the monthly period on the second")
    state = second.keys.show(key.id)
    assert state is not None and state["spent"]["period_start"] == period_start("month", time.time())


# --- the proxy pool ---------------------------------------------------------------------------------


def test_proxies_and_assignments_made_on_one_instance_reach_the_other(instances: Callable[[], Instance]) -> None:
    first, second = instances(), instances()
    AccountStore(first.db).upsert(Account(id="acct_1", chatgpt_account_id="c1", access_token="t"))
    result, (proxy_id,) = first.proxies.add(["socks5://user:pw@10.0.0.7:1080"])
    assert result.added == 1
    proxy = wait_for(lambda: second.proxies.get(proxy_id), timeout=SETTLED, what="the proxy on the second")
    assert (proxy.host, proxy.port, proxy.password) == ("10.0.0.7", 1080, "pw")
    assert second.new_proxies == [proxy_id]  # to be checked from there too

    first.proxies.assign(["acct_1"], "specific", proxy_id)
    wait_for(lambda: second.proxies.describe("acct_1")["mode"] == "specific", timeout=SETTLED, what="the assignment on the second")
    assert second.proxies.describe("acct_1")["proxy_id"] == proxy_id and second.proxies.public()[0]["accounts"] == 1

    second.proxies.record_check(proxy_id, "refused", None, None)  # its own health: unreachable from the second
    assert second.proxies.blocked("acct_1") is not None
    first.proxies.update(proxy_id, {"name": "exit-7"})  # renamed, reached the same way
    wait_for(lambda: (p := second.proxies.get(proxy_id)) is not None and p.name == "exit-7", timeout=SETTLED, what="the new name")
    assert second.proxies.get(proxy_id).status == "unreachable"  # type: ignore[union-attr]  # what it found itself stays
    assert first.proxies.get(proxy_id).status == "unknown" and second.new_proxies == [proxy_id]  # type: ignore[union-attr]

    first.proxies.update(proxy_id, {"port": 1081})  # reached another way: the second forgets its result and checks again
    wait_for(lambda: second.new_proxies == [proxy_id, proxy_id], timeout=SETTLED, what="the re-addressed proxy")
    assert second.proxies.get(proxy_id).status == "unknown" and second.proxies.blocked("acct_1") is None  # type: ignore[union-attr]

    first.proxies.assign(["acct_1"], "default")
    wait_for(lambda: second.proxies.describe("acct_1")["mode"] == "default", timeout=SETTLED, what="the default again")
    assert first.proxies.remove([proxy_id]) == [proxy_id]
    wait_for(lambda: second.proxies.ids() == [], timeout=SETTLED, what="the proxy gone on the second")
