"""The rotation strategies (pure) and plan-model learning."""

from __future__ import annotations

from core.accounts.plans import PlanModels
from core.accounts.strategies import Candidate, RotationState, pick


def cand(name: str, order: float, **kw: float) -> Candidate:
    return Candidate(id=name, order=(order, name), **kw)  # type: ignore[arg-type]


def run(strategy: str, candidates: list[Candidate], rounds: int, state: RotationState | None = None) -> list[str]:
    state = state or RotationState()
    return [pick(strategy, candidates, state).id for _ in range(rounds)]


def test_round_robin_cycles_in_added_order_and_survives_membership_changes() -> None:
    a, b, c = cand("a", 1), cand("b", 2), cand("c", 3)
    state = RotationState()
    assert run("round_robin", [c, a, b], 4, state) == ["a", "b", "c", "a"]
    assert run("round_robin", [a, c], 2, state) == ["c", "a"]  # b left: the turn after a is c


def test_sticky_keeps_one_account_until_it_cannot_serve() -> None:
    a, b, c = cand("a", 1, served=5), cand("b", 2, served=1), cand("c", 3, served=9)
    state = RotationState()
    assert run("sticky", [a, b, c], 3, state) == ["b", "b", "b"]
    assert run("sticky", [a, c], 2, state) == ["a", "a"]  # b gone: the least used one sticks
    assert run("sticky", [a, b, c], 1, state) == ["a"]


def test_least_used_prefers_idle_then_quota_then_count_then_idle_time() -> None:
    busy = cand("busy", 1, in_flight=2)
    heavy = cand("heavy", 2, used_percent=80)
    light = cand("light", 3, used_percent=10, served=7)
    assert pick("least_used", [busy, heavy, light], RotationState()).id == "light"
    fresh = cand("fresh", 4, used_percent=10, served=2)
    assert pick("least_used", [light, fresh], RotationState()).id == "fresh"
    older = cand("older", 5, used_percent=10, served=2, last_used_at=100)
    newer = cand("newer", 6, used_percent=10, served=2, last_used_at=200)
    assert pick("least_used", [newer, older], RotationState()).id == "older"
    assert pick("least_used", [busy, cand("idle-full", 7, used_percent=90)], RotationState()).id == "idle-full"


def test_unknown_strategy_means_least_used() -> None:
    assert pick("fastest", [cand("x", 1, served=3), cand("y", 2)], RotationState()).id == "y"


def test_plan_models_catalog_and_refusals() -> None:
    plans = PlanModels()
    assert plans.serves("free", "gpt-5.4") and plans.serves(None, "anything")
    plans.learn_refused("free", "gpt-5.4")
    assert not plans.serves("free", "gpt-5.4") and plans.serves("plus", "gpt-5.4")
    plans.record_catalog("plus", ["gpt-5.4", "gpt-5.5"], now=1000)
    plans.record_catalog("pro", ["gpt-5.4", "gpt-5.5", "gpt-5.6-sol"], now=1000)
    assert plans.serves("plus", "gpt-5.5") and not plans.serves("plus", "gpt-5.6-sol")
    assert plans.serves("plus", "hidden-model")  # no catalogue lists it: the backend decides
    plans.record_catalog("free", ["gpt-5.4-mini", "gpt-5.4"], now=1000)  # a fresh catalogue overrides an old refusal
    assert plans.serves("free", "gpt-5.4")
    assert plans.stale(["plus", "free", "pro", "team", None], now=1000 + 10) == {"team"}
    assert plans.stale(["plus"], now=1000 + 7200) == {"plus"}
