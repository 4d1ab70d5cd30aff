"""Token refresh through the real proxy: single flight, scheduling, backoff, permanent failures,
re-reading what is stored, and restarts — against the fake OAuth server's rotating refresh tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import sqlite_utils

from codex_fake import FakeCodexThread, mint_access_token, mint_refresh_token
from codex_fake import faults as sc
from tests.support.accounts import account, add, chat, served, wait_for
from tests.support.proxy import ProxyProcess

StartProxy = Callable[..., ProxyProcess]


def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=60)


def db(proxy: ProxyProcess) -> sqlite_utils.Database:
    return sqlite_utils.Database(proxy.data_dir / "codex-proxy.db")


def stored(proxy: ProxyProcess, chatgpt_account_id: str) -> dict[str, Any]:
    return next(db(proxy)["accounts"].rows_where("chatgpt_account_id = ?", [chatgpt_account_id]))


def test_twenty_concurrent_requests_on_an_expired_token_cause_one_refresh(start_proxy: StartProxy, fake: FakeCodexThread) -> None:
    proxy = start_proxy()
    add(proxy, "acc-burst")
    proxy.stop()
    # While the proxy was down its access token expired (the refresh token is still good).
    expired = mint_access_token(account_id="acc-burst", email="acc-burst@example.com", expires_in=-120)
    row = stored(proxy, "acc-burst")
    db(proxy)["accounts"].update(row["id"], {"access_token": expired, "expires_at": time.time() - 120})
    fake.configure(token_delay_ms=1500)  # the refresh is slow: every request arrives while it runs
    proxy.start()
    api = client(proxy)
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda i: chat(api, f"burst {i}"), range(20)))
    assert answers == [f"You said: burst {i}" for i in range(20)]
    assert fake.refresh_count("acc-burst") == 1
    sent = {r["headers"]["authorization"] for r in fake.requests("/codex/responses")}
    assert len(fake.requests("/codex/responses")) == 20 and expired not in {s[7:] for s in sent}  # nobody used the dead token
    assert stored(proxy, "acc-burst")["access_token"] != expired


def test_scheduled_refresh_happens_before_expiry(start_proxy: StartProxy, fake: FakeCodexThread) -> None:
    proxy = start_proxy(auth={"refresh_margin_seconds": 10})
    # 14 s: more than the 10 s under which any call made with the token refreshes it first
    # (USE_MARGIN) — the model-catalog fetch that follows a new account would, and with a fast
    # upstream that refresh can land before ``old_rt`` is read below. Due at 14 − 10 ± 15 %.
    before = add(proxy, "acc-soon", expires_in=14)
    old_rt = stored(proxy, "acc-soon")["refresh_token"]
    wait_for(lambda: fake.refresh_count("acc-soon") == 1, timeout=8, what="the scheduled refresh")
    assert time.time() < before["expires_at"]  # ahead of expiry, not after a failed request
    row = wait_for(lambda: (r := stored(proxy, "acc-soon"))["refresh_token"] != old_rt and r, what="the stored successor")
    assert row["expires_at"] > time.time() + 3000 and row["refresh_started_at"] is None
    time.sleep(0.5)
    assert fake.refresh_count("acc-soon") == 1  # and not again right away


def test_temporary_refresh_failures_back_off_then_recover(start_proxy: StartProxy, fake: FakeCodexThread) -> None:
    fake.configure(access_token_ttl=86400)
    fake.fault("acc-flaky", sc.refresh_error(500, "server_error"), times=2)
    proxy = start_proxy(auth={"refresh_margin_seconds": 7200, "refresh_retry_base_seconds": 0.4})
    add(proxy, "acc-flaky")  # due at once: its token lives 1h, the margin is 2h
    failing = wait_for(lambda: (a := account(proxy, "acc-flaky"))["last_error"] and a, what="the first failure")
    assert failing["status"] == "active" and "token refresh failed" in failing["last_error"]  # its token still works
    assert chat(client(proxy), "meanwhile") == "You said: meanwhile"
    wait_for(lambda: account(proxy, "acc-flaky")["expires_at"] > time.time() + 80000, timeout=10, what="the recovery")
    times = [r["time"] for r in fake.requests("/oauth/token")]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.4 * 0.7 - 0.05 and times[2] - times[1] >= 3 * 0.4 * 0.7 - 0.05  # exponential
    recovered = account(proxy, "acc-flaky")
    assert recovered["last_error"] is None and recovered["status"] == "active"


def test_permanent_refresh_failure_stops_refreshing_and_expires_with_the_token(start_proxy: StartProxy,
                                                                               fake: FakeCodexThread) -> None:  # fmt: skip
    fake.fault("acc-gone", sc.refresh_error(401, "refresh_token_expired"))
    fake.fault("acc-short", sc.refresh_error(401, "refresh_token_invalidated"))
    fake.fault("acc-deact", sc.refresh_error(401, "account_deactivated", "Your account has been deactivated."))
    proxy = start_proxy(auth={"refresh_margin_seconds": 7200})
    add(proxy, "acc-gone")
    add(proxy, "acc-short", expires_in=3)
    add(proxy, "acc-deact")
    gone = wait_for(lambda: (a := account(proxy, "acc-gone"))["refresh_error"] and a, what="the permanent failure")
    assert gone["status"] == "active" and gone["needs_login"]  # serves on its access token until that expires
    assert "refresh_token_expired" in gone["refresh_error"]
    assert wait_for(lambda: account(proxy, "acc-deact")["status"] == "banned", what="the ban")
    assert wait_for(lambda: account(proxy, "acc-short")["status"] == "expired", timeout=8, what="expiry")
    time.sleep(0.5)
    assert (fake.refresh_count("acc-gone"), fake.refresh_count("acc-short"), fake.refresh_count("acc-deact")) == (1, 1, 1)
    for i in range(3):
        chat(client(proxy), f"who serves {i}")
    assert set(served(fake)) == {"acc-gone"}


def test_refresh_rereads_tokens_another_process_stored(start_proxy: StartProxy, fake: FakeCodexThread) -> None:
    proxy = start_proxy()
    created = add(proxy, "acc-shared")
    # Another process sharing the data folder rotated the tokens and stored its successor.
    newer_rt = mint_refresh_token("acc-shared", email="acc-shared@example.com")
    newer_at = mint_access_token(account_id="acc-shared", email="acc-shared@example.com", expires_in=7200)
    db(proxy)["accounts"].update(created["id"], {"refresh_token": newer_rt, "access_token": newer_at})
    refreshed = proxy.api("POST", f"/auth/accounts/{created['id']}/refresh")
    assert refreshed.status_code == 200, refreshed.text
    sent = [r["body"]["refresh_token"] for r in fake.requests("/oauth/token")]
    assert sent == [newer_rt]  # the stored token, not the one this process still held in memory
    assert "quota" in refreshed.json()["account"] and refreshed.json()["probe_error"] is None


def test_restart_keeps_every_account_and_its_state(start_proxy: StartProxy, fake: FakeCodexThread) -> None:
    proxy = start_proxy()
    for name in ("acc-k1", "acc-k2", "acc-k3"):
        add(proxy, name, label=name.upper())
    fake.fault("acc-k1", sc.ban_403())
    fake.fault("acc-k2", sc.usage_limit_429(resets_in=1800))
    fake.set_usage("acc-k3", primary_used=42.0)
    api = client(proxy)
    assert chat(api, "keep me") == "You said: keep me"
    assert served(fake) == ["acc-k1", "acc-k2", "acc-k3"]
    before = {a["chatgpt_account_id"]: a for a in proxy.api("GET", "/auth/accounts?quota=true").json()["accounts"]}
    assert (before["acc-k1"]["status"], before["acc-k2"]["status"], before["acc-k3"]["status"]) == ("banned", "rate_limited", "active")

    def state() -> dict[str, tuple[Any, ...]]:
        rows = db(proxy)["accounts"].rows
        return {r["chatgpt_account_id"]: (r["status"], r["cooldown_until"], r["label"], bool(r["refresh_token"])) for r in rows}

    wait_for(lambda: state()["acc-k2"][0] == "rate_limited" and state()["acc-k1"][0] == "banned", what="the states on disk")
    proxy.kill9()  # no goodbye: only what was committed counts
    proxy.start()
    after = {a["chatgpt_account_id"]: a for a in proxy.api("GET", "/auth/accounts?quota=true").json()["accounts"]}
    assert set(after) == {"acc-k1", "acc-k2", "acc-k3"}
    for name in after:
        for field in ("id", "status", "cooldown_until", "label", "email", "plan", "has_refresh_token", "added_at"):
            assert after[name][field] == before[name][field], (name, field)
    assert after["acc-k3"]["quota"]["primary"]["used_percent"] == 42.0
    chat(client(proxy), "after restart")  # (a new port: -p 0)
    assert served(fake)[-1] == "acc-k3"
