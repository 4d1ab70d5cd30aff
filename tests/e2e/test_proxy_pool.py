"""The per-account proxy pool end to end: the real proxy (mitmdump + the addon), the fake backend,
and real proxy servers started here — tinyproxy (HTTP, basic auth) and microsocks (SOCKS5, user
and password). Each proxy server connects out from its own loopback address, so the fake backend
(which records every request's peer) and the "what is my IP" server show which proxy a call took."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from codex_fake import FakeCodexThread
from tests.support.accounts import add, chat, wait_for
from tests.support.proxy import ProxyProcess
from tests.support.proxy_servers import Microsocks, Tinyproxy
from tests.support.servers import ip_echo_server

StartProxy = Callable[..., ProxyProcess]
HTTP_EXIT, SOCKS_EXIT, SPARE_EXIT = "127.0.0.2", "127.0.0.3", "127.0.0.4"
SOCKS_PASSWORD = "p@ss:w/rd%"  # characters a proxy URL must percent-encode


@pytest.fixture
def ip_echo() -> Iterator[str]:
    with ip_echo_server() as server:
        yield f"http://127.0.0.1:{server.port}/?format=json"


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Tinyproxy]:
    with Tinyproxy(tmp_path / "tinyproxy", HTTP_EXIT, "tp-user", "tp.pass_1") as server:
        yield server


@pytest.fixture
def socks(tmp_path: Path) -> Iterator[Microsocks]:
    with Microsocks(tmp_path / "microsocks", SOCKS_EXIT, "ms-user", SOCKS_PASSWORD) as server:
        yield server


def pool_proxy(start_proxy: StartProxy, ip_echo: str, interval_minutes: float = 60) -> ProxyProcess:
    return start_proxy(proxies={"check_url": ip_echo, "check_interval_minutes": interval_minutes, "check_timeout_seconds": 5})


def api(proxy: ProxyProcess, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    response = proxy.api(method, path, json=body) if body is not None else proxy.api(method, path)
    assert response.status_code == status, response.text
    return response.json()


def add_proxy(proxy: ProxyProcess, url: str, name: str) -> dict[str, Any]:
    return api(proxy, "POST", "/admin/proxies", {"url": url, "name": name}, status=201)["proxy"]


def check(proxy: ProxyProcess, proxy_id: str) -> dict[str, Any]:
    return api(proxy, "POST", f"/admin/proxies/{proxy_id}/check")["proxy"]


def assign(proxy: ProxyProcess, account_ids: list[str], mode: str, proxy_id: str | None = None) -> dict[str, Any]:
    return api(proxy, "POST", "/admin/proxies/assign", {"account_ids": account_ids, "mode": mode, "proxy_id": proxy_id})["accounts"]


def account_row(proxy: ProxyProcess, account_id: str) -> dict[str, Any]:
    return next(a for a in proxy.accounts() if a["id"] == account_id)


def only_active(proxy: ProxyProcess, account_id: str) -> None:
    """Leave ``account_id`` the only account that may serve a turn."""
    others = [a["id"] for a in proxy.accounts() if a["id"] != account_id]
    if others:
        api(proxy, "POST", "/auth/accounts/batch-status", {"ids": others, "status": "disabled"})
    api(proxy, "POST", "/auth/accounts/batch-status", {"ids": [account_id], "status": "active"})


def peers(fake: FakeCodexThread, account: str, since: float, path: str) -> list[str]:
    """Where the fake's requests for ``account`` on ``path`` came from, after ``since``."""
    return [r["peer"] for r in fake.requests(path) if r["account"] == account and r["time"] >= since]


def set_interval(proxy: ProxyProcess, minutes: float) -> None:
    """Change the check interval, and wait out the check round a change of the settings starts."""
    changed = time.time()
    api(proxy, "POST", "/admin/settings", {"proxies.check_interval_minutes": minutes})
    wait_for(lambda: all((p["checked_at"] or 0) > changed for p in api(proxy, "GET", "/admin/proxies")["proxies"] if p["enabled"]),
             15, "the check round a settings change starts")  # fmt: skip


def client_of(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=60)


def test_refresh_quota_and_turns_of_an_account_go_through_its_proxy(start_proxy: StartProxy, fake: FakeCodexThread,
                                                                    ip_echo: str, tiny: Tinyproxy, socks: Microsocks) -> None:  # fmt: skip
    """Three accounts: one pinned to tinyproxy, one to microsocks, one direct. A forced token
    refresh, a quota check and a turn of each reach the backend from that account's proxy's exit
    address (and show in tinyproxy's own log); the health check reads each proxy's exit IP."""
    proxy = pool_proxy(start_proxy, ip_echo)
    http_proxy, socks_proxy = add_proxy(proxy, tiny.url, "tiny"), add_proxy(proxy, socks.url, "socks")
    checked = api(proxy, "POST", "/admin/proxies/check")["proxies"]
    assert {p["name"]: (p["status"], p["exit_ip"]) for p in checked} == {"tiny": ("ok", HTTP_EXIT), "socks": ("ok", SOCKS_EXIT)}
    assert all(p["latency_ms"] > 0 and p["last_error"] is None for p in checked)
    ids = {name: add(proxy, f"acc-{name}")["id"] for name in ("http", "socks", "direct")}
    assign(proxy, [ids["http"]], "specific", http_proxy["id"])
    assign(proxy, [ids["socks"]], "specific", socks_proxy["id"])
    assign(proxy, [ids["direct"]], "direct")
    client = client_of(proxy)
    since = time.time()
    for name, account_id in ids.items():
        refreshed = api(proxy, "POST", f"/auth/accounts/{account_id}/refresh")
        assert refreshed["probe_error"] is None
        only_active(proxy, account_id)
        assert chat(client, f"through {name}")
    for name, exit_address in (("http", HTTP_EXIT), ("socks", SOCKS_EXIT), ("direct", "127.0.0.1")):
        for path in ("/oauth/token", "/wham/usage", "/codex/responses"):
            assert peers(fake, f"acc-{name}", since, path) == [exit_address], (name, path)
    log = tiny.log()
    for line in ("POST http://127.0.0.1:%d/oauth/token", "GET http://127.0.0.1:%d/backend-api/wham/usage",
                 "POST http://127.0.0.1:%d/backend-api/codex/responses"):  # fmt: skip
        assert line % int(fake.base_url.rsplit(":", 1)[1]) in log, log
    assert f"connected to 127.0.0.1:{fake.base_url.rsplit(':', 1)[1]}" in socks.log()
    assert account_row(proxy, ids["http"])["proxy"] == {"mode": "specific", "proxy_id": http_proxy["id"], "proxy_name": "tiny",
                                                         "blocked": None}  # fmt: skip
    assert SOCKS_PASSWORD not in proxy.log() and "tp.pass_1" not in proxy.log()


def test_a_killed_proxy_is_marked_unreachable_and_its_accounts_move_or_stop(start_proxy: StartProxy, fake: FakeCodexThread,
                                                                            ip_echo: str, tiny: Tinyproxy, socks: Microsocks) -> None:  # fmt: skip
    """tinyproxy serves a pinned account and an automatic one; it is killed. A check marks it
    unreachable: the automatic account moves to microsocks and keeps serving, the pinned one
    stops with a clear status (and a turn only it could take gets a 503 saying why). tinyproxy
    comes back on its port, passes the next check, and the pinned account serves through it again."""
    proxy = pool_proxy(start_proxy, ip_echo)
    http_proxy = add_proxy(proxy, tiny.url, "tiny")
    assert check(proxy, http_proxy["id"])["status"] == "ok"
    pinned, floating = add(proxy, "acc-pinned")["id"], add(proxy, "acc-floating")["id"]
    assign(proxy, [pinned], "specific", http_proxy["id"])
    assert assign(proxy, [floating], "automatic")[floating]["proxy_id"] == http_proxy["id"]  # the only healthy one
    socks_proxy = add_proxy(proxy, socks.url, "socks")
    assert check(proxy, socks_proxy["id"])["status"] == "ok"
    assert account_row(proxy, floating)["proxy"]["proxy_id"] == http_proxy["id"]  # automatic keeps its proxy

    tiny.kill()
    down = check(proxy, http_proxy["id"])
    assert down["status"] == "unreachable" and down["latency_ms"] is None
    assert "connect" in down["last_error"].lower(), down["last_error"]
    pinned_row, floating_row = account_row(proxy, pinned), account_row(proxy, floating)
    assert pinned_row["status"] == "proxy_unavailable"
    assert "tiny" in pinned_row["proxy"]["blocked"] and "unreachable" in pinned_row["proxy"]["blocked"]
    assert floating_row["status"] == "active" and floating_row["proxy"]["proxy_id"] == socks_proxy["id"]
    client = client_of(proxy)
    since = time.time()
    for _ in range(3):
        assert chat(client, "the pinned account is out")
    assert peers(fake, "acc-floating", since, "/codex/responses") == [SOCKS_EXIT] * 3
    assert peers(fake, "acc-pinned", since, "/codex/responses") == []
    quota = proxy.api("GET", f"/auth/accounts/{pinned}/quota")
    assert quota.status_code == 503 and quota.json()["error"]["code"] == "proxy_unavailable"

    api(proxy, "POST", "/auth/accounts/batch-status", {"ids": [floating], "status": "disabled"})
    with pytest.raises(openai.APIStatusError) as refused:
        chat(client, "only the pinned account is left")
    assert refused.value.status_code == 503
    assert "proxy" in str(refused.value) and "tiny" in str(refused.value), str(refused.value)

    tiny.start()
    assert check(proxy, http_proxy["id"])["status"] == "ok"
    assert account_row(proxy, pinned)["status"] == "active"
    since = time.time()
    assert chat(client, "back through tinyproxy")
    assert peers(fake, "acc-pinned", since, "/codex/responses") == [HTTP_EXIT]


def test_a_failed_call_and_the_schedule_find_a_dead_proxy(start_proxy: StartProxy, fake: FakeCodexThread, ip_echo: str,
                                                          tiny: Tinyproxy, socks: Microsocks) -> None:  # fmt: skip
    """Nobody asks for a check. A turn of an automatic account whose proxy just died fails to
    connect; that failure has the proxy checked at once, the account moves, and the turn's retry
    succeeds through the other proxy: the client never sees it. The scheduled checks find the
    other dead proxy by themselves."""
    proxy = pool_proxy(start_proxy, ip_echo, interval_minutes=0.05)  # every 3 s
    http_proxy = add_proxy(proxy, tiny.url, "tiny")
    wait_for(lambda: proxy.api("GET", "/admin/proxies").json()["proxies"][0]["status"] == "ok", 15, "the first check")
    floating = add(proxy, "acc-floating")["id"]
    assert assign(proxy, [floating], "automatic")[floating]["proxy_id"] == http_proxy["id"]
    socks_proxy = add_proxy(proxy, socks.url, "socks")
    wait_for(lambda: {p["status"] for p in api(proxy, "GET", "/admin/proxies")["proxies"]} == {"ok"}, 15, "both healthy")
    set_interval(proxy, 60)  # no scheduled check from here on
    tiny.kill()
    since = time.time()
    assert chat(client_of(proxy), "the proxy died just now")
    assert peers(fake, "acc-floating", since, "/codex/responses") == [SOCKS_EXIT]
    assert account_row(proxy, floating)["proxy"]["proxy_id"] == socks_proxy["id"]
    states = {p["name"]: p["status"] for p in api(proxy, "GET", "/admin/proxies")["proxies"]}
    assert states == {"tiny": "unreachable", "socks": "ok"}

    set_interval(proxy, 0.1)  # every 6 s
    socks.kill()
    wait_for(lambda: api(proxy, "GET", "/admin/proxies")["proxies"][1]["status"] == "unreachable", 30, "the schedule")
    row = account_row(proxy, floating)
    assert row["status"] == "proxy_unavailable" and "no proxy in the pool is healthy" in row["proxy"]["blocked"]


def test_the_global_default_is_tls_proxy_url_and_direct_bypasses_it(start_proxy: StartProxy, fake: FakeCodexThread,
                                                                     ip_echo: str, tiny: Tinyproxy) -> None:  # fmt: skip
    """With ``tls.proxy_url`` set, an account on the default mode goes out through it; one in
    direct mode connects itself, past ``tls.proxy_url`` (and any proxy in the environment)."""
    proxy = start_proxy(tls={"proxy_url": tiny.url}, proxies={"check_url": ip_echo})
    listed = api(proxy, "GET", "/admin/proxies")
    assert listed["default"]["url"] == f"http://tp•••:••••••@127.0.0.1:{tiny.port}"
    assert "tp.pass_1" not in str(listed)
    default, direct = add(proxy, "acc-default")["id"], add(proxy, "acc-direct")["id"]
    assign(proxy, [direct], "direct")
    client = client_of(proxy)
    since = time.time()
    for account_id in (default, direct):
        only_active(proxy, account_id)
        assert chat(client, "which way?")
    assert peers(fake, "acc-default", since, "/codex/responses") == [HTTP_EXIT]
    assert peers(fake, "acc-direct", since, "/codex/responses") == ["127.0.0.1"]
