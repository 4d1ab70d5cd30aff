"""Client keys without a proxy: the key format and digest, budget periods, the checks on a key's
settings, and the guard's counters over a real SQLite file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.access.guard import KeyGuard
from core.access.keys import ClientKey, KeySpecError, apply_spec, digest, key_id_of, new_key, period_end, period_start
from core.access.service import KeyService
from core.protocols.base import Forbidden, TooManyRequests, Unauthorized
from core.store.client_keys import ClientKeyStore, SpendDelta, SpendTotals
from core.store.db import Database


@pytest.fixture
def keys(tmp_path: Path) -> KeyService:
    store = ClientKeyStore(Database(tmp_path / "keys.db"))
    return KeyService(store, KeyGuard(store))


def test_the_key_format_and_its_digest() -> None:
    key_id, key = new_key()
    assert key.startswith(f"sk-proxy-{key_id}_") and len(key) > 50 and key_id_of(key) == key_id
    assert key_id_of("sk-proxy-short") is None and key_id_of("sk-proj-abcdefgh_xyz") is None
    stored = ClientKey(key_id, digest(key), "k", 0.0)
    assert stored.matches(key) and not stored.matches(key + "x") and not stored.matches(new_key()[1])
    assert key not in str(stored.to_row()) and "digest" not in stored.public()


def test_budget_periods_start_at_local_midnight_and_the_first_of_the_month() -> None:
    now = time.mktime((2026, 3, 31, 15, 30, 0, 0, 0, -1))
    day = period_start("day", now)
    assert time.localtime(day)[:6] == (2026, 3, 31, 0, 0, 0)
    assert time.localtime(period_end("day", day))[:6] == (2026, 4, 1, 0, 0, 0)
    month = period_start("month", now)
    assert time.localtime(month)[:6] == (2026, 3, 1, 0, 0, 0)
    assert time.localtime(period_end("month", month))[:3] == (2026, 4, 1)
    december = period_start("month", time.mktime((2026, 12, 20, 9, 0, 0, 0, 0, -1)))
    assert time.localtime(period_end("month", december))[:3] == (2027, 1, 1)
    assert period_start("total", now) == 0.0 and period_end("total", 0.0) is None


@pytest.mark.parametrize("body, problem", [
    ({"label": " "}, "label"),
    ({"budget": {"limit": 0}}, "budget.limit"),
    ({"budget": {"limit": 10, "unit": "tokens", "period": "week"}}, "budget.period"),
    ({"budget": {"limit": 2.5, "unit": "tokens"}}, "whole number"),
    ({"allowed_models": []}, "allowed_models"),
    ({"allowed_models": ["gpt-5.4", 3]}, "allowed_models"),
    ({"max_concurrency": 1.5}, "max_concurrency"),
    ({"enabled": "yes"}, "enabled"),
    ({"expires_in_days": -1}, "expires_in_days"),
    ({"owner": "me"}, "unknown field"),
])  # fmt: skip
def test_unusable_settings_say_what_is_wrong(body: dict, problem: str) -> None:
    with pytest.raises(KeySpecError) as refused:
        apply_spec(ClientKey("abcd1234", b"", "k", 0.0), body, 1000.0)
    assert problem in str(refused.value)


def test_settings_apply_and_models_match_globs() -> None:
    key = apply_spec(ClientKey("abcd1234", b"", "k", 0.0), {"expires_in_days": 2, "allowed_models": ["gpt-5.4*", "claude-*"],
                                                            "budget": {"limit": 1.5, "unit": "usd", "period": "month"}}, 1000.0)  # fmt: skip
    assert key.expires_at == 1000.0 + 2 * 86400 and key.budget is not None and key.budget.limit == 1.5
    assert key.allows("gpt-5.4-mini") and key.allows("claude-haiku-4-5", "gpt-5.3-codex") and not key.allows("gpt-5.5")
    assert apply_spec(key, {"allowed_models": None, "budget": None}, 0).allows("anything")


def test_identify_admit_release_and_charge(keys: KeyService) -> None:
    state, secret = keys.create({"label": "team", "budget": {"limit": 100, "unit": "tokens", "period": "day"}, "max_concurrency": 2})
    guard = keys.guard
    key = guard.identify(secret)
    assert key.id == state["id"]
    guard.admit(key, "gpt-5.4", "gpt-5.4")
    guard.admit(key, "gpt-5.4", "gpt-5.4")
    with pytest.raises(TooManyRequests) as busy:
        guard.admit(key, "gpt-5.4", "gpt-5.4")
    assert busy.value.code == "concurrency_limit_exceeded" and busy.value.retry_after == 1
    guard.release(key.id)
    guard.charge(key.id, 60, 0.001)
    guard.admit(key, "gpt-5.4", "gpt-5.4")  # 60 of 100 used: still allowed
    guard.release(key.id)
    guard.release(key.id)
    guard.charge(key.id, 60, 0.001)
    with pytest.raises(TooManyRequests) as spent:
        guard.admit(key, "gpt-5.4", "gpt-5.4")
    assert spent.value.code == "budget_exceeded" and 0 < spent.value.retry_after <= 90000
    assert keys.show(key.id)["status"] == "over_budget" and keys.show(key.id)["in_flight"] == 0


def test_a_new_day_starts_the_count_over(keys: KeyService) -> None:
    _, secret = keys.create({"label": "daily", "budget": {"limit": 10, "unit": "tokens", "period": "day"}})
    guard = keys.guard
    key = guard.identify(secret)
    today = time.time()
    guard.charge(key.id, 50, 0.0, now=today)
    with pytest.raises(TooManyRequests):
        guard.admit(key, "m", "m", now=today)
    tomorrow = period_end("day", period_start("day", today)) + 1  # type: ignore[operator]
    guard.admit(key, "m", "m", now=tomorrow)
    assert guard.state(key, now=tomorrow)["spent"]["tokens"] == 0


def test_refusals_for_the_key_itself(keys: KeyService) -> None:
    state, secret = keys.create({"label": "limited", "allowed_models": ["gpt-5.4-mini"], "expires_at": time.time() + 60})
    guard = keys.guard
    with pytest.raises(Forbidden):
        guard.admit(guard.identify(secret), "gpt-5.4", "gpt-5.4")
    guard.admit(guard.identify(secret), "codex-mini", "gpt-5.4-mini")  # the model that serves it is allowed
    keys.update(state["id"], {"enabled": False})
    with pytest.raises(Unauthorized, match="disabled"):
        guard.identify(secret)
    keys.update(state["id"], {"enabled": True, "expires_at": time.time() - 1})
    with pytest.raises(Unauthorized, match="expired"):
        guard.identify(secret)
    keys.delete(state["id"])
    with pytest.raises(Unauthorized, match="Invalid"):
        guard.identify(secret)


def test_counters_are_written_behind_and_read_back(tmp_path: Path) -> None:
    db = Database(tmp_path / "keys.db")
    store = ClientKeyStore(db)
    service = KeyService(store, KeyGuard(store))
    state, secret = service.create({"label": "kept", "budget": {"limit": 5, "unit": "usd", "period": "month"}})
    service.guard.charge(state["id"], 1234, 0.75)
    assert store.flush()
    again = KeyGuard(ClientKeyStore(db))
    shown = again.state(again.identify(secret))
    assert (shown["spent"]["tokens"], shown["spent"]["usd"]) == (1234, 0.75)
    assert shown["spent"]["period_start"] == period_start("month", time.time())
    assert secret not in str(list(db.conn()["client_keys"].rows))


class HeldStore:
    """A store whose writes the test plays out by hand: what the guard queued, and when it is told
    that a write committed."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.queued: list[SpendDelta] = []
        self.written: Callable[[list[tuple[SpendDelta, SpendTotals]]], None] = lambda pairs: None

    def all(self) -> list[dict]:
        return self.rows

    def on_written(self, handler: Callable[[list[tuple[SpendDelta, SpendTotals]]], None]) -> None:
        self.written = handler

    def save_spend(self, delta: SpendDelta) -> None:
        self.queued.append(delta)


def test_totals_heard_out_of_order_the_newer_wins_and_own_charges_count_once() -> None:
    row = {**ClientKey("abcd1234", b"", "k", 0.0).to_row(), "spent_tokens": 100, "spent_usd": 0.0, "period_start": 0.0,
           "spend_version": 4}  # fmt: skip
    store = HeldStore([row])
    guard = KeyGuard(store)  # type: ignore[arg-type]
    key = guard.get("abcd1234")
    assert key is not None

    def totals(tokens: int, version: int) -> SpendTotals:
        return SpendTotals("abcd1234", tokens, 0.0, 0.0, 1.0, version, 0)

    guard.charge(key.id, 10, 0.0)  # 110 here: 100 stored, 10 our own
    store.written([(store.queued.pop(), totals(130, 6))])  # ours landed after another instance's 20
    guard.take([totals(120, 5)])  # that instance's write, heard late: older than what we hold
    assert guard.state(key)["spent"]["tokens"] == 130

    guard.charge(key.id, 10, 0.0)  # 140
    guard.take([totals(160, 8)])  # another's 20 on top of ours (v7: 140), heard before we learn of ours
    assert guard.state(key)["spent"]["tokens"] == 170  # ours in the total and in our own: for a moment, counted twice
    store.written([(store.queued.pop(), totals(140, 7))])
    assert guard.state(key)["spent"]["tokens"] == 160
