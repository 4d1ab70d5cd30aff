"""The management API (``/auth/accounts/*``, ``/admin/*``) against a real proxy and SQLite file."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx
import openai
import yaml

from codex_fake import FakeCodexThread
from codex_fake import faults as sc
from tests.support.accounts import account, add, chat, served, wait_for
from tests.support.proxy import ProxyProcess


def test_export_import_and_secrets(pool_proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    one = add(pool_proxy, "acc-e1", label="first")
    add(pool_proxy, "acc-e2", plan="pro", refresh=False)
    listed = pool_proxy.api("GET", "/auth/accounts?quota=true")
    assert "eyJ" not in listed.text and "oaistb_rt_" not in listed.text  # no token in any listing

    full = pool_proxy.api("GET", "/auth/accounts/export")
    assert full.headers["cache-control"] == "no-store"
    exported = full.json()["accounts"]
    assert {e["chatgpt_account_id"] for e in exported} == {"acc-e1", "acc-e2"}
    first = next(e for e in exported if e["label"] == "first")
    assert first["token"].startswith("eyJ") and first["refreshToken"].startswith("oaistb_rt_")
    minimal = pool_proxy.api("GET", "/auth/accounts/export?format=minimal").json()["accounts"]
    assert minimal == [{"refreshToken": first["refreshToken"], "label": "first"}]  # acc-e2 has no refresh token

    pool_proxy.api("DELETE", f"/auth/accounts/{one['id']}")
    back = pool_proxy.api("POST", "/auth/accounts/import", json={"accounts": exported}).json()
    assert (back["added"], back["updated"], back["failed"]) == (1, 1, 0)
    restored = account(pool_proxy, "acc-e1")
    assert restored["label"] == "first" and restored["id"] == one["id"] and restored["has_refresh_token"]


def test_batch_delete_and_status(pool_proxy: ProxyProcess, pool_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    ids = [add(pool_proxy, name)["id"] for name in ("acc-b1", "acc-b2", "acc-b3")]
    off = pool_proxy.api("POST", "/auth/accounts/batch-status", json={"ids": [ids[0], ids[1], "acct_nope"], "status": "disabled"})
    assert off.json() == {"updated": 2, "ids": ids[:2], "missing": ["acct_nope"]}
    for i in range(3):
        chat(pool_client, f"only b3 {i}")
    assert served(fake) == ["acc-b3"] * 3
    assert pool_proxy.api("POST", "/auth/accounts/batch-status", json={"ids": ids, "status": "banned"}).status_code == 400
    assert pool_proxy.api("POST", "/auth/accounts/batch-status", json={"ids": "x", "status": "active"}).status_code == 400
    gone = pool_proxy.api("POST", "/auth/accounts/batch-delete", json={"ids": [ids[2], "acct_nope"]}).json()
    assert gone == {"deleted": 1, "ids": [ids[2]], "missing": ["acct_nope"]}
    on = pool_proxy.api("POST", "/auth/accounts/batch-status", json={"ids": [ids[0]], "status": "active"})
    assert on.json()["updated"] == 1
    chat(pool_client, "b1 is back")
    assert served(fake)[-1] == "acc-b1"
    assert {a["id"] for a in pool_proxy.accounts()} == set(ids[:2])


def test_refresh_and_quota_endpoints(pool_proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    created = add(pool_proxy, "acc-q")
    fake.set_usage("acc-q", primary_used=33.0, secondary_used=4.0, reset_credits=2)
    quota = pool_proxy.api("GET", f"/auth/accounts/{created['id']}/quota").json()
    assert quota["quota"]["primary"]["used_percent"] == 33.0 and quota["usage"]["rate_limit_reset_credits"]["available_count"] == 2
    refreshed = pool_proxy.api("POST", f"/auth/accounts/{created['id']}/refresh").json()
    assert fake.refresh_count("acc-q") == 1 and refreshed["account"]["expires_at"] >= created["expires_at"]
    assert "eyJ" not in str(refreshed)
    assert pool_proxy.api("GET", "/auth/accounts/acct_missing/quota").status_code == 404
    fake.fault("acc-q", sc.refresh_error(401, "refresh_token_reused"))
    dead = pool_proxy.api("POST", f"/auth/accounts/{created['id']}/refresh")
    assert dead.status_code == 409 and dead.json()["error"]["code"] == "refresh_token_reused"
    assert account(pool_proxy, "acc-q")["needs_login"]


def test_settings_are_saved_and_applied_without_restart(pool_proxy: ProxyProcess) -> None:
    local = pool_proxy.data_dir / "local.yaml"
    saved = pool_proxy.api("POST", "/admin/rotation-settings", json={"rotation_strategy": "sticky"})
    assert saved.json()["success"] and saved.json()["rotation_strategy"] == "sticky"
    assert yaml.safe_load(local.read_text())["auth"]["rotation_strategy"] == "sticky"
    bad = pool_proxy.api("POST", "/admin/rotation-settings", json={"rotation_strategy": "random"})
    assert bad.status_code == 400 and "least_used" in bad.json()["error"]["message"]

    quota = pool_proxy.api("POST", "/admin/quota-settings",
                           json={"warning_thresholds": {"primary": [50, 90], "secondary": [70]}, "refresh_interval_minutes": 0})
    assert quota.json()["warning_thresholds"] == {"primary": [50, 90], "secondary": [70]}
    assert yaml.safe_load(local.read_text())["quota"]["refresh_interval_minutes"] == 0
    assert pool_proxy.api("GET", "/admin/quota-settings").json()["refresh_interval_minutes"] == 0
    for body in ({"warning_thresholds": [0, 101]}, {"skip_exhausted": "yes"}, {"refresh_interval_minutes": -1}, {}):
        assert pool_proxy.api("POST", "/admin/quota-settings", json=body).status_code == 400, body
    assert pool_proxy.api("GET", "/admin/quota-settings", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_usage_stats_and_logs(pool_proxy: ProxyProcess, pool_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    add(pool_proxy, "acc-stats")
    since = time.time()
    for i in range(3):
        chat(pool_client, f"stats {i}", model="gpt-5.4-mini")
    fake.fault("acc-stats", sc.usage_limit_429(resets_in=60))
    try:
        chat(pool_client, "stats limited", model="gpt-5.4-mini")
    except openai.RateLimitError:
        pass
    stats_id = account(pool_proxy, "acc-stats")["id"]

    def logged(query: str = "") -> list[dict]:
        return pool_proxy.api("GET", f"/admin/logs?since={since}&limit=10{query}").json()["logs"]

    rows = wait_for(lambda: len(logged()) == 4 and logged(), what="4 log rows")
    assert [r["status"] for r in rows] == [429, 200, 200, 200]  # newest first
    assert [r["account_id"] for r in rows] == [None, stats_id, stats_id, stats_id]  # no account served the 429
    assert all(r["model"] == "gpt-5.4-mini" for r in rows) and "eyJ" not in str(rows)
    assert [r["id"] for r in logged(f"&account_id={stats_id}&status=200")] == [r["id"] for r in rows[1:]]
    page = pool_proxy.api("GET", f"/admin/logs?since={since}&limit=2&offset=1").json()
    assert page["total"] == 4 and [r["id"] for r in page["logs"]] == [r["id"] for r in rows[1:3]]
    assert pool_proxy.api("GET", "/admin/logs?limit=500").status_code == 400

    summary = pool_proxy.api("GET", "/admin/usage-stats/summary?hours=1").json()
    mine = next(r for r in summary["by_account"] if r["key"] == stats_id)
    assert (mine["requests"], mine["succeeded"], mine["failed"]) == (3, 3, 0)
    assert mine["email"] == "acc-stats@example.com" and mine["output_tokens"] > 0
    assert summary["totals"]["requests"] >= 4
    history = pool_proxy.api("GET", "/admin/usage-stats/history?granularity=five_min&hours=1").json()
    assert history["granularity"] == "five_min" and sum(p["requests"] for p in history["data_points"]) >= 4
    assert all(p["bucket_start"] % 300 == 0 for p in history["data_points"])
    assert pool_proxy.api("GET", "/admin/usage-stats/history?granularity=weekly").status_code == 400
    assert pool_proxy.api("GET", "/admin/usage-stats/summary?hours=-2").status_code == 400


def test_management_needs_the_key(start_proxy: Callable[..., ProxyProcess]) -> None:
    proxy = start_proxy()
    for method, path in (("GET", "/auth/accounts/export"), ("POST", "/auth/accounts/batch-delete"), ("GET", "/admin/logs"),
                         ("GET", "/auth/quota/warnings"), ("POST", "/auth/login/device"), ("GET", "/admin/usage-stats/summary")):
        response = proxy.api(method, path, headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key", path


def test_a_304_for_a_cached_dashboard_file_leaves_the_connection_clean(proxy: ProxyProcess) -> None:
    """A browser revalidating a static file gets a 304 with no body and no chunked framing, so the
    next answer on that keep-alive connection is read as sent (a stray end-of-chunks after the 304
    used to be taken for the next answer: ERR_INVALID_HTTP_RESPONSE in Chromium)."""
    etag = proxy.api("GET", "/static/js/core.js").headers["etag"]
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as conn:
        host = f"Host: 127.0.0.1:{proxy.port}\r\n"
        conn.sendall(f"GET /static/js/core.js HTTP/1.1\r\n{host}If-None-Match: {etag}\r\n\r\nGET /health HTTP/1.1\r\n{host}\r\n".encode())
        received = b""
        while b'"accounts"' not in received:
            chunk = conn.recv(65536)
            assert chunk, received
            received += chunk
    not_modified, _, rest = received.partition(b"\r\n\r\n")
    assert not_modified.startswith(b"HTTP/1.1 304") and b"transfer-encoding" not in not_modified.lower()
    assert rest.startswith(b"HTTP/1.1 200 OK"), rest[:80]
