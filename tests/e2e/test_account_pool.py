"""The account pool through the real proxy: rotation, failover the client never sees, quota,
affinity and plan routing — driven with the official ``openai`` SDK against the fake backend."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import openai
import pytest

from codex_fake import FakeCodexThread
from codex_fake import faults as sc
from tests.support.accounts import account, add, chat, chat_stream, served, wait_for
from tests.support.proxy import ProxyProcess


def set_rotation(proxy: ProxyProcess, **settings: Any) -> None:
    response = proxy.api("POST", "/admin/rotation-settings", json=settings)
    assert response.status_code == 200, response.text


# --- strategies --------------------------------------------------------------------------------------


def test_least_used_spreads_requests_then_follows_remaining_quota(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                                  fake: FakeCodexThread) -> None:  # fmt: skip
    for name in ("acc-a", "acc-b", "acc-c"):
        add(pool_proxy, name)
    for i in range(6):
        assert chat(pool_client, f"spread {i}") == f"You said: spread {i}"
    assert Counter(served(fake)) == {"acc-a": 2, "acc-b": 2, "acc-c": 2}

    fake.set_usage("acc-a", primary_used=80)
    fake.set_usage("acc-b", primary_used=10)
    fake.set_usage("acc-c", primary_used=50)
    for i in range(3):  # one turn each teaches the pool every account's quota
        chat(pool_client, f"learn {i}")
    before = len(served(fake))
    for i in range(4):
        chat(pool_client, f"quota {i}")
    assert served(fake)[before:] == ["acc-b"] * 4


def test_round_robin_takes_turns_in_added_order(pool_proxy: ProxyProcess, pool_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    for name in ("acc-r1", "acc-r2", "acc-r3"):
        add(pool_proxy, name)
    set_rotation(pool_proxy, rotation_strategy="round_robin")
    assert pool_proxy.api("GET", "/admin/rotation-settings").json()["rotation_strategy"] == "round_robin"
    for i in range(6):
        chat(pool_client, f"rr {i}")
    assert served(fake) == ["acc-r1", "acc-r2", "acc-r3"] * 2


def test_sticky_stays_on_one_account_until_it_cannot_serve(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                           fake: FakeCodexThread) -> None:  # fmt: skip
    for name in ("acc-s1", "acc-s2", "acc-s3"):
        add(pool_proxy, name)
    set_rotation(pool_proxy, rotation_strategy="sticky")
    for i in range(4):
        chat(pool_client, f"sticky {i}")
    first = served(fake)[0]
    assert served(fake) == [first] * 4
    fake.fault(first, sc.usage_limit_429(resets_in=600))
    for i in range(3):
        chat(pool_client, f"moved {i}")
    after = served(fake)[4:]
    assert after[0] == first and after[1] != first and after[1:] == [after[1]] * 3  # one 429, then a new sticky account


# --- failover the client never sees ----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_usage_limit_on_one_account_is_answered_by_another(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                           fake: FakeCodexThread, stream: bool) -> None:  # fmt: skip
    add(pool_proxy, "acc-limited")
    add(pool_proxy, "acc-spare")
    fake.fault("acc-limited", sc.usage_limit_429(resets_in=900))
    text = chat_stream(pool_client, "are you there") if stream else chat(pool_client, "are you there")
    assert text == "You said: are you there"
    assert served(fake) == ["acc-limited", "acc-spare"]
    limited = account(pool_proxy, "acc-limited", quota=True)
    assert limited["status"] == "rate_limited"
    assert abs(limited["cooldown_until"] - (time.time() + 900)) < 30
    assert limited["quota"]["primary"]["used_percent"] == 100.0  # the 429's own x-codex-* headers were read
    chat(pool_client, "again")
    assert served(fake)[-1] == "acc-spare"  # the limited account is not tried again until it resets


def test_exhausted_pool_is_a_clear_429_with_the_earliest_retry(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                               fake: FakeCodexThread) -> None:  # fmt: skip
    add(pool_proxy, "acc-x1")
    add(pool_proxy, "acc-x2")
    fake.fault("acc-x1", sc.usage_limit_429(resets_in=3600))
    fake.fault("acc-x2", sc.usage_limit_429(resets_in=300))
    with pytest.raises(openai.RateLimitError) as raised:
        chat(pool_client, "anyone?")
    assert 270 <= int(raised.value.response.headers["retry-after"]) <= 310
    assert "available again" in raised.value.message
    stream = httpx.post(pool_proxy.base_url + "/chat/completions", headers={"Authorization": f"Bearer {pool_proxy.key}"},
                        json={"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": "x"}]}, timeout=30)
    assert stream.status_code == 429 and int(stream.headers["retry-after"]) > 200
    assert len(served(fake)) == 2  # the second request did not even try: both accounts wait for their reset
    # The backend's usage-limit contract, for the pool (Codex CLI marks the goal usage-limited from it).
    error = stream.json()["error"]
    assert error["type"] == error["code"] == "usage_limit_reached" and error["plan_type"] == "plus"
    assert 270 <= error["resets_in_seconds"] <= 310 and abs(error["resets_at"] - time.time() - error["resets_in_seconds"]) < 5
    assert stream.headers["x-codex-primary-used-percent"] == "100.0"  # the pooled limits ride along
    responses = httpx.post(pool_proxy.base_url + "/responses", headers={"Authorization": f"Bearer {pool_proxy.key}"},
                           json={"model": "gpt-5.4", "stream": True, "input": "x"}, timeout=30)
    assert responses.status_code == 429 and responses.json()["error"]["type"] == "usage_limit_reached"


@pytest.mark.parametrize("fault, status", [
    (sc.ban_403(), "banned"),
    (sc.cloudflare_403(), "cooldown"),
    (sc.empty_404(), "cooldown"),
    (sc.payment_402(), "rate_limited"),
    (sc.deactivated_401(), "banned"),
])  # fmt: skip
def test_account_failures_move_the_turn_and_mark_the_account(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                             fake: FakeCodexThread, fault: dict[str, Any], status: str) -> None:  # fmt: skip
    add(pool_proxy, "acc-bad")
    add(pool_proxy, "acc-good")
    fake.fault("acc-bad", fault)
    assert chat_stream(pool_client, "route around it") == "You said: route around it"
    assert served(fake) == ["acc-bad", "acc-good"]
    bad = account(pool_proxy, "acc-bad")
    assert bad["status"] == status and bad["last_error"]
    chat(pool_client, "and again")
    assert served(fake)[-1] == "acc-good"


def test_overloaded_503_moves_on_without_penalty(pool_proxy: ProxyProcess, pool_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    add(pool_proxy, "acc-busy")
    add(pool_proxy, "acc-calm")
    fake.fault("acc-busy", sc.overloaded_503(), times=1)
    assert chat(pool_client, "capacity") == "You said: capacity"
    assert served(fake) == ["acc-busy", "acc-calm"]
    assert account(pool_proxy, "acc-busy")["status"] == "active"


def test_upstream_401_refreshes_once_and_retries_the_same_account(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                                  fake: FakeCodexThread) -> None:  # fmt: skip
    add(pool_proxy, "acc-401")
    add(pool_proxy, "acc-other")
    fake.fault("acc-401", sc.token_expired_401(), times=1)
    assert chat(pool_client, "token please") == "You said: token please"
    assert served(fake) == ["acc-401", "acc-401"]
    assert fake.refresh_count("acc-401") == 1
    sent = [r["headers"]["authorization"] for r in fake.requests("/codex/responses")]
    assert sent[0] != sent[1]  # the retry carried the refreshed token
    assert account(pool_proxy, "acc-401")["status"] == "active"


def test_persistent_401_marks_expired_after_one_refresh(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                        fake: FakeCodexThread) -> None:  # fmt: skip
    add(pool_proxy, "acc-dead")
    add(pool_proxy, "acc-alive")
    fake.fault("acc-dead", sc.token_expired_401())
    assert chat(pool_client, "still works") == "You said: still works"
    assert served(fake) == ["acc-dead", "acc-dead", "acc-alive"]
    assert fake.refresh_count("acc-dead") == 1
    dead = account(pool_proxy, "acc-dead")
    assert dead["status"] == "expired" and dead["needs_login"]


def test_mid_stream_failure_is_not_retried_after_output(pool_proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    add(pool_proxy, "acc-m1")
    add(pool_proxy, "acc-m2")
    fake.script({"text": ["half ", "an answer"], "fail": {"code": "server_error", "message": "boom"}, "fail_after": 4})
    with httpx.stream("POST", pool_proxy.base_url + "/chat/completions", headers={"Authorization": f"Bearer {pool_proxy.key}"},
                      json={"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": "x"}]}, timeout=30) as r:
        body = r.read().decode()
    assert "half " in body and "boom" in body
    assert len(served(fake)) == 1  # output had reached the client: no silent replay on another account


# --- quota ---------------------------------------------------------------------------------------------


def test_exhausted_headers_keep_the_account_out_until_reset(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                            fake: FakeCodexThread) -> None:  # fmt: skip
    fake.configure(enforce_usage_limits=False)  # the backend still serves; only its headers say 100%
    add(pool_proxy, "acc-full")
    add(pool_proxy, "acc-free")
    fake.set_usage("acc-full", primary_used=100.0, primary_reset_after=120)
    chat(pool_client, "one")  # served by acc-full, whose headers now say it is used up
    assert served(fake) == ["acc-full"]
    full = account(pool_proxy, "acc-full", quota=True)
    assert full["status"] == "rate_limited" and full["quota"]["exhausted_until"] == pytest.approx(time.time() + 120, abs=15)
    for i in range(3):
        chat(pool_client, f"more {i}")
    assert served(fake)[1:] == ["acc-free"] * 3

    assert pool_proxy.api("POST", "/admin/quota-settings", json={"skip_exhausted": False}).json()["skip_exhausted"] is False
    pool_proxy.api("POST", "/auth/accounts/batch-status", json={"ids": [full["id"]], "status": "active"})
    pool_proxy.api("POST", "/auth/accounts/batch-status", json={"ids": [account(pool_proxy, "acc-free")["id"]], "status": "disabled"})
    chat(pool_client, "allowed now")
    chat(pool_client, "allowed again")
    assert served(fake)[4:] == ["acc-full"] * 2  # no longer skipped, and not marked again from its headers
    assert account(pool_proxy, "acc-full")["status"] == "active"


def test_quota_warnings_and_fresh_quota(pool_proxy: ProxyProcess, pool_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    add(pool_proxy, "acc-warn")
    fake.set_usage("acc-warn", primary_used=96.0, secondary_used=81.0)
    assert pool_proxy.api("GET", "/auth/quota/warnings").json()["warnings"] == []
    chat(pool_client, "use some")
    warnings = pool_proxy.api("GET", "/auth/quota/warnings").json()
    found = {(w["window"], w["threshold"], w["level"]) for w in warnings["warnings"]}
    assert found == {("primary", 95.0, "critical"), ("secondary", 80.0, "warning")}
    assert warnings["thresholds"] == [80, 95]

    fake.set_usage("acc-warn", primary_used=12.0, secondary_used=3.0)
    listed = pool_proxy.api("GET", "/auth/accounts?quota=fresh").json()["accounts"][0]
    assert listed["quota"]["primary"]["used_percent"] == 12.0 and listed["quota"]["plan_type"] == "plus"
    assert "quota" not in pool_proxy.api("GET", "/auth/accounts").json()["accounts"][0]
    assert fake.requests("/wham/usage")


def test_pooled_usage_view_for_codex_cli(pool_proxy: ProxyProcess, pool_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.configure(enforce_usage_limits=False)
    add(pool_proxy, "acc-p1", plan="plus")
    add(pool_proxy, "acc-p2", plan="pro")
    fake.set_usage("acc-p1", primary_used=30.0, secondary_used=10.0)
    fake.set_usage("acc-p2", primary_used=100.0, primary_reset_after=600, secondary_used=50.0)
    for path in ("/backend-api/wham/usage", "/api/codex/usage", "/backend-api/codex/usage"):
        body = httpx.get(pool_proxy.origin + path, headers={"Authorization": f"Bearer {pool_proxy.key}"}).json()
        assert body["plan_type"] == "pro" and body["codex_proxy"] == {"pooled": True, "accounts": 2, "available": 1}
        rate = body["rate_limit"]
        assert rate["allowed"] is True and rate["limit_reached"] is False
        assert rate["primary_window"]["used_percent"] == 65 and rate["secondary_window"]["used_percent"] == 30
        assert rate["primary_window"]["limit_window_seconds"] == 18000
    assert {r["account"] for r in fake.requests("/wham/usage")} == {"acc-p1", "acc-p2"}  # fetched once per account…
    httpx.get(pool_proxy.origin + "/backend-api/wham/usage")  # …and cached (this machine needs no key)
    assert len(fake.requests("/wham/usage")) == 2

    with pool_client.chat.completions.with_streaming_response.create(
        model="gpt-5.4", messages=[{"role": "user", "content": "headers"}], stream=True
    ) as response:
        # The serving account's own headers (only acc-p1 can serve: acc-p2's window is used up).
        assert response.headers["x-codex-primary-used-percent"] == "30.0"
        assert response.headers["x-codex-secondary-window-minutes"] == "10080"
        list(response.iter_lines())


# --- affinity and plans ---------------------------------------------------------------------------------


def test_session_affinity_keeps_a_conversation_on_its_account(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                              fake: FakeCodexThread) -> None:  # fmt: skip
    add(pool_proxy, "acc-c1")
    add(pool_proxy, "acc-c2")
    set_rotation(pool_proxy, rotation_strategy="round_robin")
    history = [{"role": "user", "content": "plan a trip"}]
    for turn in range(3):  # the same conversation grows; round robin alone would alternate accounts
        answer = pool_client.chat.completions.create(model="gpt-5.4", messages=history).choices[0].message.content
        history += [{"role": "assistant", "content": answer or ""}, {"role": "user", "content": f"and step {turn}"}]
    assert len(set(served(fake))) == 1
    home = served(fake)[0]
    keys = {r["body"]["prompt_cache_key"] for r in fake.requests("/codex/responses")}
    assert len(keys) == 1  # one cache key: the backend's prompt cache gets hits

    fake.fault(home, sc.usage_limit_429(resets_in=600))
    pool_client.chat.completions.create(model="gpt-5.4", messages=history)
    pool_client.chat.completions.create(model="gpt-5.4", messages=history)
    assert served(fake)[3] == home and served(fake)[4] != home and served(fake)[5] == served(fake)[4]

    set_rotation(pool_proxy, session_affinity=False)
    fake.clear_fault(home)
    home_id = account(pool_proxy, home)["id"]
    fresh = pool_proxy.api("GET", f"/auth/accounts/{home_id}/quota").json()  # the backend says its window is fine now
    assert fresh["quota"]["primary"]["used_percent"] == 0 and fresh["usage"]["rate_limit"]["limit_reached"] is False
    pool_proxy.api("POST", "/auth/accounts/batch-status", json={"ids": [home_id], "status": "active"})
    before = len(served(fake))
    for _ in range(2):
        pool_client.chat.completions.create(model="gpt-5.4", messages=history)
    assert len(set(served(fake)[before:])) == 2  # without affinity, round robin alternates


def test_plan_routing_sends_a_model_only_to_plans_that_have_it(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                               fake: FakeCodexThread) -> None:  # fmt: skip
    add(pool_proxy, "acc-free", plan="free")
    add(pool_proxy, "acc-plus", plan="plus")
    wait_for(lambda: {"free", "plus"} <= set(pool_proxy.api("GET", "/admin/rotation-settings").json()["plan_models"]),
             what="the model lists of both plans")
    for i in range(4):
        chat(pool_client, f"big {i}", model="gpt-5.4")  # the backend serves gpt-5.4 to paid plans only
    assert served(fake) == ["acc-plus"] * 4
    for i in range(4):
        chat(pool_client, f"small {i}", model="gpt-5.4-mini")
    assert served(fake)[4:] == ["acc-free"] * 4  # the free plan has it, and that account is the least used


def test_model_not_supported_is_learned_and_moved_invisibly(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                            fake: FakeCodexThread) -> None:  # fmt: skip
    set_rotation(pool_proxy, plan_routing=False)  # no model lists: learn from the backend's refusal
    add(pool_proxy, "acc-f2", plan="free_workspace")
    add(pool_proxy, "acc-p2", plan="pro")
    assert chat(pool_client, "learn me", model="gpt-5.4") == "You said: learn me"
    assert served(fake) == ["acc-f2", "acc-p2"]
    chat(pool_client, "learned", model="gpt-5.4")
    assert served(fake)[2:] == ["acc-p2"]
    only_free = pool_proxy.api("POST", "/auth/accounts/batch-status",
                               json={"ids": [account(pool_proxy, "acc-p2")["id"]], "status": "disabled"})
    assert only_free.json()["updated"] == 1
    with pytest.raises(openai.BadRequestError) as raised:
        chat(pool_client, "nobody", model="gpt-5.4")
    assert "not available on the plan" in raised.value.message


def test_no_account_at_all_is_a_clear_error(pool_proxy: ProxyProcess, pool_client: openai.OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        chat(pool_client, "hello")
    assert "/auth/login" in raised.value.message


def test_each_account_replays_only_its_own_cookies(pool_proxy: ProxyProcess, pool_client: openai.OpenAI,
                                                   fake: FakeCodexThread) -> None:  # fmt: skip
    import sqlite_utils

    fake.configure(set_cookies=True)
    add(pool_proxy, "acc-ck1")
    add(pool_proxy, "acc-ck2")
    set_rotation(pool_proxy, rotation_strategy="round_robin")
    for i in range(4):
        chat(pool_client, f"cookie {i}")
    sent = [(r["account"], r["headers"].get("cookie")) for r in fake.requests("/codex/responses")]
    assert [(name, cookie) for name, cookie in sent[:2]] == [("acc-ck1", None), ("acc-ck2", None)]
    jars = {name: dict(part.split("=", 1) for part in cookie.split("; ")) for name, cookie in sent[2:]}
    assert jars["acc-ck1"]["cf_clearance"] == "clear-acc-ck1" and jars["acc-ck2"]["cf_clearance"] == "clear-acc-ck2"
    assert jars["acc-ck1"]["__cf_bm"] != jars["acc-ck2"]["__cf_bm"]  # each its own, never the other's
    assert "clear-acc" not in pool_proxy.api("GET", "/auth/accounts?quota=true").text

    fake.fault("acc-ck1", sc.empty_404(), times=1)  # a blocked path: the account's cookies are reset
    chat(pool_client, "blocked")
    assert served(fake)[4:] == ["acc-ck1", "acc-ck2"]
    db = sqlite_utils.Database(pool_proxy.data_dir / "codex-proxy.db")
    wait_for(lambda: db["accounts"].get(account(pool_proxy, "acc-ck1")["id"])["cookies"] is None, what="the reset cookies")
