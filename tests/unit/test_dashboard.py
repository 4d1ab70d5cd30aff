"""The dashboard's Flask app on its own (no proxy process): the login gate, sessions and CSRF,
the settings API, imports, the request-log queries behind Usage and Logs, the words in both
languages and the vendored assets. The browser tests (tests/browser/) drive the same through the
real proxy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from codex_fake import mint_access_token, mint_refresh_token
from core.gateway.capture import BodyCapture
from core.gateway.redaction import redact_json
from core.services import Services
from core.settings import SettingsError
from core.store import log_queries
from core.store.bodies import BODY_CAP, BodyLog, Captured
from dashboard import create_app
from dashboard.i18n import STRINGS
from dashboard.sessions import LoginLimiter

KEY = "unit-test-key-123"
REMOTE = {"REMOTE_ADDR": "192.0.2.50"}  # the client address the gateway hands the app
DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    (tmp_path / "local.yaml").write_text(yaml.safe_dump({"server": {"proxy_api_key": KEY}}))
    svc = Services(tmp_path)
    yield svc
    svc.close_sync()


@pytest.fixture
def app(services: Services) -> Flask:
    return create_app(services)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def boot(page: bytes) -> dict[str, Any]:
    match = re.search(rb'<script id="boot" type="application/json">(.*?)</script>', page, re.S)
    assert match, page[:500]
    return json.loads(match[1])


def log_in(client: FlaskClient, password: str = KEY, address: str = "192.0.2.50") -> Any:
    return client.post("/dashboard/login", data={"password": password, "next": "/dashboard/usage"},
                       environ_base={"REMOTE_ADDR": address})  # fmt: skip


# --- the gate -------------------------------------------------------------------------------------


def test_this_machine_opens_the_dashboard_with_a_session_cookie(client: FlaskClient) -> None:
    page = client.get("/", headers={"Host": "127.0.0.1:8080"})
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith("codex_proxy_session_8080=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=43200" in cookie and "Path=/" in cookie
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    data = boot(page.data)
    assert len(data["csrf"]) > 20 and data["strings"]["nav.accounts"] == "Accounts"
    assert KEY not in page.get_data(as_text=True)
    again = client.get("/dashboard/settings", headers={"Host": "127.0.0.1:8080"})
    assert again.status_code == 200 and "Set-Cookie" not in again.headers  # the session carries on


def test_a_rebound_name_on_loopback_is_not_this_machine(client: FlaskClient) -> None:
    """DNS rebinding: a page of another site reaches us from 127.0.0.1 with its own name in Host."""
    page = client.get("/", headers={"Host": "attacker.example:8080"})
    assert page.status_code == 302 and page.headers["Location"].startswith("/dashboard/login")
    assert client.get("/auth/accounts", headers={"Host": "attacker.example:8080"}).status_code == 401
    for host in ("localhost:8080", "[::1]:8080", "127.0.0.2:9", "app.localhost"):
        assert client.get("/dashboard/logs", headers={"Host": host}).status_code == 200, host


def test_other_machines_log_in_first(client: FlaskClient) -> None:
    page = client.get("/dashboard/usage", environ_base=REMOTE)
    assert page.status_code == 302 and page.headers["Location"] == "/dashboard/login?next=/dashboard/usage"
    assert client.get("/dashboard/login", environ_base=REMOTE).status_code == 200
    wrong = log_in(client, "not-the-key")
    assert wrong.status_code == 401 and b'id="login-error"' in wrong.data and "Set-Cookie" not in wrong.headers
    done = log_in(client)
    assert done.status_code == 303 and done.headers["Location"] == "/dashboard/usage"
    assert "HttpOnly" in done.headers["Set-Cookie"] and "SameSite=Lax" in done.headers["Set-Cookie"]
    page = client.get("/dashboard/usage", environ_base=REMOTE)
    assert page.status_code == 200 and b'id="logout"' in page.data
    csrf = boot(page.data)["csrf"]
    assert client.get("/auth/accounts", environ_base=REMOTE).status_code == 200  # the session stands in for the key
    refused = client.post("/admin/settings", json={"logs.enabled": False}, environ_base=REMOTE)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "csrf_failed"
    forged = client.post("/admin/settings", json={"logs.enabled": False}, environ_base=REMOTE, headers={"X-CSRF-Token": "x" * 32})
    assert forged.status_code == 403
    saved = client.post("/admin/settings", json={"logs.enabled": False}, environ_base=REMOTE, headers={"X-CSRF-Token": csrf})
    assert saved.status_code == 200 and saved.json["values"]["logs.enabled"] is False
    out = client.post("/dashboard/logout", data={"csrf_token": csrf}, environ_base=REMOTE)
    assert out.status_code == 303 and "codex_proxy_session_80=;" in out.headers["Set-Cookie"]
    assert client.get("/dashboard/usage", environ_base=REMOTE).status_code == 302


def test_login_redirects_only_to_this_server(app: Flask) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = app.test_client().post("/dashboard/login", data={"password": KEY, "next": target}, environ_base=REMOTE)
        assert response.status_code == 303 and response.headers["Location"] == "/", target


def test_failed_logins_are_limited_per_address(app: Flask, client: FlaskClient) -> None:
    now = [1000.0]
    app.extensions["codex_login_limiter"] = LoginLimiter(clock=lambda: now[0])
    for attempt in range(4):
        assert log_in(client, f"wrong-{attempt}").status_code == 401
    fifth = log_in(client, "wrong-4")
    assert fifth.status_code == 429 and fifth.headers["Retry-After"] == "900"
    locked = log_in(client)  # even the right password waits
    assert locked.status_code == 429 and b"Too many failed attempts" in locked.data
    assert log_in(app.test_client(), address="192.0.2.99").status_code == 303  # another address is not locked out
    now[0] += 901
    assert log_in(client).status_code == 303


def test_changes_need_the_csrf_token_or_the_key(client: FlaskClient) -> None:
    host = {"Host": "127.0.0.1:8080"}
    csrf = boot(client.get("/", headers=host).data)["csrf"]
    assert client.post("/auth/accounts/batch-delete", json={"ids": []}, headers=host).status_code == 403
    assert client.post("/auth/accounts/batch-delete", json={"ids": []}, headers={**host, "X-CSRF-Token": csrf}).status_code == 200
    # The key needs no token (scripts), and no session either.
    fresh = client.application.test_client()
    keyed = fresh.post("/auth/accounts/batch-delete", json={"ids": []}, headers={"Authorization": f"Bearer {KEY}"})
    assert keyed.status_code == 200


def test_without_a_key_other_sites_cannot_post_from_the_browser(tmp_path: Path) -> None:
    (tmp_path / "local.yaml").write_text(yaml.safe_dump({"server": {"proxy_api_key": None}}))
    svc = Services(tmp_path)
    try:
        client = create_app(svc).test_client()
        host = {"Host": "127.0.0.1:8080"}
        assert client.post("/auth/accounts/batch-delete", json={"ids": []}, headers=host).status_code == 200  # curl, no Origin
        for cross in ({"Origin": "http://attacker.example"}, {"Origin": "http://127.0.0.1:3000"}, {"Sec-Fetch-Site": "cross-site"}):
            refused = client.post("/auth/accounts/batch-delete", json={"ids": []}, headers={**host, **cross})
            assert refused.status_code == 403 and refused.json["error"]["code"] == "csrf_failed", cross
        same = client.post("/auth/accounts/batch-delete", json={"ids": []}, headers={**host, "Origin": "http://127.0.0.1:8080"})
        assert same.status_code == 200
        remote = client.get("/dashboard/login", environ_base=REMOTE)
        assert b'id="login-closed"' in remote.data  # no password and no key: remote access is off
        assert client.post("/dashboard/login", data={"password": "anything"}, environ_base=REMOTE).status_code == 403
    finally:
        svc.close_sync()


def test_a_new_password_or_key_logs_other_browsers_out(client: FlaskClient, app: Flask) -> None:
    other = app.test_client()
    assert log_in(other).status_code == 303
    assert other.get("/auth/accounts", environ_base=REMOTE).status_code == 200
    auth = {"Authorization": f"Bearer {KEY}"}
    assert client.post("/admin/dashboard-password", json={"password": "short"}, headers=auth).status_code == 400
    assert client.post("/admin/dashboard-password", json={"password": "correct horse"}, headers=auth).json["has_password"]
    assert other.get("/auth/accounts", environ_base=REMOTE).status_code == 401
    assert log_in(other).status_code == 401  # the key is no longer the password
    assert log_in(other, "correct horse").status_code == 303
    assert client.post("/admin/dashboard-password", json={"password": None}, headers=auth).json["has_password"] is False
    assert log_in(other).status_code == 303


def test_the_key_is_revealed_and_replaced_through_the_api(client: FlaskClient, services: Services) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    shown = client.get("/admin/server-key", headers=auth)
    assert shown.json == {"api_key": KEY} and shown.headers["Cache-Control"] == "no-store"
    assert KEY not in (redact_json(shown.data) or b"").decode()  # what mitmweb's copy of this answer shows
    assert client.post("/admin/server-key", json={"api_key": "has space"}, headers=auth).status_code == 400
    new = client.post("/admin/server-key", json={"generate": True}, headers=auth).json["api_key"]
    assert new.startswith("cp-") and services.cfg.server.proxy_api_key == new
    assert yaml.safe_load(services.config.local_path.read_text())["server"]["proxy_api_key"] == new
    assert client.get("/admin/server-key", headers=auth).status_code == 401
    assert client.get("/admin/server-key", headers={"x-api-key": new}).json["api_key"] == new


# --- settings -------------------------------------------------------------------------------------


def test_settings_are_checked_saved_and_say_what_waits_for_a_restart(client: FlaskClient, services: Services) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    view = client.get("/admin/settings", headers=auth).json
    assert view["values"]["auth.rotation_strategy"] == "least_used" and view["restart_pending"] == []
    assert view["live"]["ollama.enabled"] is False and view["live"]["model.aliases"] is True
    saved = client.post("/admin/settings", json={"model.aliases": {"fast-one": "gpt-5.4-mini", "deep": "gpt-5.5-high"},
                                                 "model.default": "gpt-5.4-mini"}, headers=auth)  # fmt: skip
    assert saved.status_code == 200 and saved.json["restart_needed"] == []
    assert services.catalog.resolve("fast-one").id == "gpt-5.4-mini" and services.catalog.resolve(None).id == "gpt-5.4-mini"
    replaced = client.post("/admin/settings", json={"model.aliases": {"deep": "gpt-5.5"}}, headers=auth)
    assert replaced.json["values"]["model.aliases"] == {"deep": "gpt-5.5"}  # the whole mapping, not merged
    assert yaml.safe_load(services.config.local_path.read_text())["model"]["aliases"] == {"deep": "gpt-5.5"}
    restart = client.post("/admin/settings", json={"ollama.enabled": True, "intercept.hosts": ["api.openai.com"]}, headers=auth)
    assert sorted(restart.json["restart_needed"]) == ["intercept.hosts", "ollama.enabled"]
    assert sorted(restart.json["restart_pending"]) == ["intercept.hosts", "ollama.enabled"]
    back = client.post("/admin/settings", json={"ollama.enabled": False}, headers=auth)
    assert back.json["restart_pending"] == ["intercept.hosts"]  # back to what it started with
    for bad, word in (({"model.default": "no-such-model"}, "not a known model"), ({"model.aliases": {"x": "nope"}}, "x:"),
                      ({"ollama.port": 70000}, "1 to 65535"), ({"intercept.hosts": ["bad host"]}, "host names"),
                      ({"auth.rotation_strategy": "random"}, "least_used"), ({"server.proxy_api_key": "x"}, "unknown"), ({}, "Give")):
        refused = client.post("/admin/settings", json=bad, headers=auth)
        assert refused.status_code == 400 and word in refused.json["error"]["message"], bad


def test_a_value_the_settings_loader_refuses_is_a_400(client: FlaskClient, services: Services,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise SettingsError("local.yaml: 'logs.bodies_kept' must be above zero, not 0")

    monkeypatch.setattr(services.config, "update_local", refuse)
    refused = client.post("/admin/settings", json={"logs.bodies_kept": 5}, headers={"Authorization": f"Bearer {KEY}"})
    assert refused.status_code == 400 and "logs.bodies_kept" in refused.json["error"]["message"]


def test_an_environment_variable_that_wins_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_BRIDGE_PORT", "11999")
    svc = Services(tmp_path)
    try:
        client = create_app(svc).test_client()
        view = client.get("/admin/settings", headers={"Host": "127.0.0.1", "Authorization": f"Bearer {svc.cfg.server.proxy_api_key}"}).json
        assert view["env_overrides"] == {"ollama.port": "OLLAMA_BRIDGE_PORT"} and view["values"]["ollama.port"] == 11999
    finally:
        svc.close_sync()


def test_import_takes_an_export_a_list_or_a_codex_auth_json(client: FlaskClient) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    token = mint_access_token(account_id="acc-auth-json", email="cli@example.com")
    codex_auth = {"OPENAI_API_KEY": None, "tokens": {"access_token": token, "refresh_token": mint_refresh_token("acc-auth-json"),
                                                     "id_token": None, "account_id": "acc-auth-json"}}  # fmt: skip
    assert client.post("/auth/accounts/import", json=codex_auth, headers=auth).json["added"] == 1
    listed = client.post("/auth/accounts/import", json=[{"token": mint_access_token(account_id="acc-list")}, {"nope": 1}], headers=auth)
    assert (listed.json["added"], listed.json["failed"]) == (1, 1)
    assert client.post("/auth/accounts/import", json={"what": 1}, headers=auth).status_code == 400
    accounts = client.get("/auth/accounts", headers=auth).json["accounts"]
    assert {a["chatgpt_account_id"] for a in accounts} == {"acc-auth-json", "acc-list"}
    assert next(a for a in accounts if a["chatgpt_account_id"] == "acc-auth-json")["has_refresh_token"]


# --- request log queries --------------------------------------------------------------------------


def _rows(now: float) -> list[dict[str, Any]]:
    base = {"protocol": "openai", "path": "/v1/chat/completions", "stream": 1, "attempts": 1, "cached_tokens": 0, "reasoning_tokens": 0}
    rows = []
    for i in range(10):  # ttfb 100..1000 ms; 50 tokens in 500 ms after the first byte = 100 tok/s ... 
        rows.append({**base, "ts": now - 3000 + i, "request_id": f"req_ok{i}", "account_id": "acct_a" if i < 6 else "acct_b",
                     "model": "gpt-5.4", "requested_model": "gpt-5.4", "status": 200, "error": None, "input_tokens": 10,
                     "output_tokens": 50 * (i + 1), "ttfb_ms": 100.0 * (i + 1), "duration_ms": 100.0 * (i + 1) + 500})  # fmt: skip
    rows.append({**base, "ts": now - 30, "request_id": "req_limit1", "account_id": None, "model": "gpt-5.4-mini", "requested_model": "mini",
                 "status": 429, "error": "Codex API error (429): Rate limit reached. Please try again in 2.5s.", "input_tokens": None,
                 "output_tokens": None, "ttfb_ms": 3.0, "duration_ms": 3.0})  # fmt: skip
    rows.append({**rows[-1], "ts": now - 20, "request_id": "req_limit2", "error": "Codex API error (429): Rate limit reached. Please try again in 7s."})
    rows.append({**rows[-1], "ts": now - 10, "request_id": "req_50%_off", "status": 502, "error": "Codex API error (502): upstream closed"})
    return rows


def test_log_queries_behind_usage_and_logs(services: Services) -> None:
    now = time.time()
    db = services.db.conn()
    db["request_log"].insert_all(_rows(now))
    since = now - 3600
    series = log_queries.series(db, since, "daily", "account")
    assert {(p["key"], p["requests"]) for p in series} >= {("acct_a", 6), ("acct_b", 4), (None, 3)}
    by_model = {p["key"]: p for p in log_queries.series(db, since, "daily", "model")}
    assert by_model["gpt-5.4-mini"]["failed"] == 3 and by_model["gpt-5.4"]["output_tokens"] == 50 * 55

    latency = log_queries.latency(db, since, "daily")
    assert latency["ttfb_ms"] == {"count": 10, "p50": 550.0, "p90": 910.0, "p99": 991.0}  # failed requests left out
    assert latency["tokens_per_second"]["p50"] == 550.0 and latency["tokens_per_second"]["count"] == 10
    assert latency["points"][0]["ttfb_p50"] == 550.0

    groups = log_queries.error_groups(db, since)
    assert [(g["status"], g["count"]) for g in groups] == [(429, 2), (502, 1)]
    assert groups[0]["kind"] == "429 Codex API error (#): Rate limit reached. Please try again in #s."
    assert groups[0]["example"]["request_id"] == "req_limit2" and groups[0]["models"] == ["gpt-5.4-mini"]

    rows, total = log_queries.search(db, 5, 0, {}, since, text="try again")
    assert total == 2 and [r["request_id"] for r in rows] == ["req_limit2", "req_limit1"]
    assert log_queries.search(db, 5, 0, {}, since, text="50%")[1] == 1  # % is a character here, not a wildcard
    assert log_queries.search(db, 50, 0, {"account_id": "acct_b"}, since, outcome="ok")[1] == 4
    assert log_queries.search(db, 50, 0, {}, since, outcome="error")[1] == 3


def test_log_endpoints_and_bodies(client: FlaskClient, services: Services) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    services.db.conn()["request_log"].insert_all(_rows(time.time()))
    listed = client.get("/admin/logs?q=rate+limit&outcome=error&limit=10", headers=auth).json
    assert listed["total"] == 2 and all("Rate limit" in row["error"] for row in listed["logs"])
    entry_id = listed["logs"][0]["id"]
    assert client.get(f"/admin/logs/{entry_id}", headers=auth).json == {
        "log": {**listed["logs"][0], "account_name": None, "key_label": None}, "capture_bodies": False, "bodies": None}
    services.db.conn()["request_bodies"].insert({"request_id": "req_limit2", "ts": 1.0, "request": "{}", "response": "{}", "truncated": 0})
    assert client.get(f"/admin/logs/{entry_id}", headers=auth).json["bodies"] == {"request": "{}", "response": "{}", "truncated": 0}
    assert client.get("/admin/logs/999999", headers=auth).status_code == 404
    assert client.get("/admin/logs?outcome=maybe", headers=auth).status_code == 400
    assert [g["count"] for g in client.get("/admin/logs/errors?hours=1", headers=auth).json["groups"]] == [2, 1]
    series = client.get("/admin/usage-stats/series?group=model&granularity=hourly&hours=2", headers=auth).json
    assert {p["key"] for p in series["data_points"]} == {"gpt-5.4", "gpt-5.4-mini"}
    assert client.get("/admin/usage-stats/series?group=planet", headers=auth).status_code == 400
    assert client.get("/admin/usage-stats/latency?hours=2&granularity=five_min", headers=auth).json["ttfb_ms"]["count"] == 10
    assert client.get("/admin/usage-stats/latency?hours=-1", headers=auth).status_code == 400


def test_body_capture_keeps_the_newest_bodies_and_no_credentials(services: Services) -> None:
    class Sink:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        async def start(self, status: int, headers: dict[str, str]) -> None: ...

        async def write(self, data: bytes) -> None:
            self.written.append(data)

        async def end(self) -> None: ...

    inner = Sink()
    capture = BodyCapture(inner)

    async def stream() -> None:
        await capture.start(200, {})
        for chunk in (b"data: one\n\n", b"x" * BODY_CAP):
            await capture.write(chunk)
        await capture.end()

    asyncio.run(stream())
    assert inner.written == [b"data: one\n\n", b"x" * BODY_CAP]  # passed on whole
    log = BodyLog(services.db, keep=3)
    try:
        log.record(capture.captured("req_0", 0.0, b'{"model": "gpt-5.4", "api_key": "sk-secret", "messages": []}'))
        assert log.flush()
        row = log.get("req_0")
        assert row is not None and "sk-secret" not in row["request"] and "[redacted]" in row["request"]
        assert row["truncated"] == 1 and row["response"].startswith("data: one") and len(row["response"]) == BODY_CAP
        for i in range(1, 5):
            log.record(Captured(f"req_{i}", float(i), b"{}", str(i).encode()))
            assert log.flush()
        assert [r["request_id"] for r in services.db.conn().query("SELECT request_id FROM request_bodies ORDER BY ts")] == ["req_2", "req_3", "req_4"]
    finally:
        log.close()


# --- words and assets -----------------------------------------------------------------------------


def _used_keys() -> set[str]:
    """Keys in ``t("...")`` calls; a key built at run time (``t("nav." ~ page)``) shows as its prefix."""
    keys: set[str] = set()
    for path in (DASHBOARD / "templates").glob("*.html"):
        keys |= set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", path.read_text()))
    for path in (DASHBOARD / "static" / "js").glob("*.js"):
        keys |= set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", path.read_text()))
    return keys


def test_every_word_exists_in_both_languages_with_the_same_placeholders() -> None:
    used = _used_keys()
    missing = {k for k in used - STRINGS.keys() if not (k.endswith(".") and any(s.startswith(k) for s in STRINGS))}
    assert not missing, f"used but not translated: {sorted(missing)}"
    for key, (en, zh) in STRINGS.items():
        assert en and zh, key
        assert sorted(re.findall(r"\{(\w+)\}", en)) == sorted(re.findall(r"\{(\w+)\}", zh)), key


def test_pages_render_in_the_chosen_language(client: FlaskClient) -> None:
    chinese = client.get("/dashboard/connect", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "接入客户端" in chinese.get_data(as_text=True) and 'lang="zh-CN"' in chinese.get_data(as_text=True)
    client.set_cookie("codex_proxy_lang", "en")
    assert "Connect a client" in client.get("/dashboard/connect", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    client.set_cookie("codex_proxy_theme", "dark")
    assert 'data-theme="dark"' in client.get("/").get_data(as_text=True)


def test_vendored_files_match_their_pins_and_nothing_loads_from_elsewhere() -> None:
    vendor = DASHBOARD / "static" / "vendor"
    manifest = json.loads((vendor / "vendor.json").read_text())
    for name, pin in manifest.items():
        assert (vendor / name / "LICENSE").exists()
        for file, digest in pin["sha256"].items():
            assert hashlib.sha256((vendor / name / file).read_bytes()).hexdigest() == digest, file
    external = re.compile(r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//|@import\s+url\(\s*["']?(?:https?:)?//|from\s+["'](?:https?:)?//""")
    for path in [*(DASHBOARD / "templates").glob("*.html"), *(DASHBOARD / "static").rglob("*.js"), *(DASHBOARD / "static").rglob("*.css")]:
        if "vendor" not in path.parts:
            assert not external.search(path.read_text()), path
