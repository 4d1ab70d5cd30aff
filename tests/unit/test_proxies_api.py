"""The proxy pool's management API through the Flask app (no proxy process): credentials never
come back, the export holds them only when asked, bad input is a 400 in the API's envelope,
and the Proxies page renders in both languages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient

from codex_fake import mint_access_token
from core.services import Services
from dashboard import create_app

KEY = "unit-test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
PASSWORD = "hunter2-zebra"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    (tmp_path / "local.yaml").write_text(yaml.safe_dump({"server": {"proxy_api_key": KEY},
                                                         "tls": {"proxy_url": f"http://boss:{PASSWORD}@10.9.9.9:3128"}}))  # fmt: skip
    svc = Services(tmp_path)
    yield svc
    svc.close_sync()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services).test_client()


def call(client: FlaskClient, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    response = client.open(path, method=method, json=body, headers=AUTH)
    assert response.status_code == status, response.get_data(as_text=True)
    assert PASSWORD not in response.get_data(as_text=True) or "secrets=true" in path
    return response.get_json()


def add_account(client: FlaskClient, name: str) -> str:
    token = mint_access_token(account_id=name, plan="plus", email=f"{name}@example.com")
    return call(client, "POST", "/auth/accounts", {"token": token}, status=201)["account"]["id"]


def test_credentials_are_masked_and_exported_only_when_asked(client: FlaskClient) -> None:
    added = call(client, "POST", "/admin/proxies", {"url": f"socks5://carol:{PASSWORD}@10.0.0.1:1080", "name": "home"}, status=201)
    assert added["created"] is True
    proxy = added["proxy"]
    assert (proxy["username"], proxy["has_password"], proxy["status"]) == ("ca•••", True, "unknown")
    listed = call(client, "GET", "/admin/proxies")
    assert listed["default"] == {"url": "http://•••:••••••@10.9.9.9:3128", "setting": "tls.proxy_url"}
    assert "carol" not in json.dumps(listed)
    plain = call(client, "GET", "/admin/proxies/export")
    assert plain == {"secrets": False, "proxies": [{"name": "home", "scheme": "socks5", "host": "10.0.0.1", "port": 1080,
                                                    "enabled": True, "credentials_omitted": True}]}  # fmt: skip
    full = client.get("/admin/proxies/export?secrets=true", headers=AUTH)
    assert full.headers["Cache-Control"] == "no-store"
    assert full.get_json() == {"secrets": True, "proxies": [{"name": "home", "scheme": "socks5", "host": "10.0.0.1", "port": 1080,
                                                            "enabled": True, "username": "carol", "password": PASSWORD}]}  # fmt: skip
    again = call(client, "POST", "/admin/proxies/import", full.get_json())
    assert (again["added"], again["updated"]) == (0, 1)


def test_import_takes_lines_and_reports_each_bad_one(client: FlaskClient) -> None:
    result = call(client, "POST", "/admin/proxies/import", {"text": "# my list\nhttp://10.0.0.1:3128\n10.0.0.2:8080:u:p\nftp://x:1\n"})
    assert (result["added"], result["failed"]) == (2, 1)
    assert result["errors"][0]["index"] == 2 and "scheme" in result["errors"][0]["error"]
    assert call(client, "POST", "/admin/proxies/import", {"nope": 1}, status=400)["error"]["code"] == "invalid_request"


def test_bad_input_is_a_400_and_unknown_ids_404(client: FlaskClient) -> None:
    error = call(client, "POST", "/admin/proxies", {"url": "http://host-without-port"}, status=400)["error"]
    assert error["code"] == "invalid_proxy" and "port" in error["message"]
    assert call(client, "PATCH", "/admin/proxies/px_missing", {"name": "x"}, status=404)["error"]["code"] == "not_found"
    assert call(client, "DELETE", "/admin/proxies/px_missing", status=404)["error"]["code"] == "not_found"
    proxy = call(client, "POST", "/admin/proxies", {"url": "http://10.0.0.1:3128"}, status=201)["proxy"]
    assert call(client, "PATCH", f"/admin/proxies/{proxy['id']}", {"port": "many"}, status=400)["error"]["code"] == "invalid_proxy"
    assert call(client, "POST", "/admin/proxies/assign", {"account_ids": "all"}, status=400)["error"]["code"] == "invalid_request"
    assert call(client, "POST", "/admin/settings", {"proxies.check_url": "ftp://x"}, status=400)["error"]["code"] == "invalid_request"
    assert client.get("/admin/proxies").status_code == 401  # the key, as for every management call


def test_assigning_modes_and_what_the_accounts_list_says(client: FlaskClient, services: Services) -> None:
    pinned, floating = add_account(client, "pinned"), add_account(client, "floating")
    proxy = call(client, "POST", "/admin/proxies", {"url": "http://10.0.0.1:3128", "name": "office"}, status=201)["proxy"]
    assigned = call(client, "POST", "/admin/proxies/assign", {"account_ids": [pinned, "acct_gone"], "mode": "specific",
                                                               "proxy_id": proxy["id"]})  # fmt: skip
    assert assigned["updated"] == 1 and assigned["missing"] == ["acct_gone"]
    assert assigned["accounts"][pinned] == {"mode": "specific", "proxy_id": proxy["id"], "proxy_name": "office", "blocked": None}
    call(client, "POST", "/admin/proxies/assign", {"account_ids": [floating], "mode": "automatic"})
    services.proxies.record_check(proxy["id"], "Failed to connect", None, None)
    accounts = {a["id"]: a for a in call(client, "GET", "/auth/accounts")["accounts"]}
    assert accounts[pinned]["status"] == "proxy_unavailable"
    assert accounts[pinned]["proxy"]["blocked"] == "its proxy office is unreachable (Failed to connect)"
    assert accounts[floating]["status"] == "proxy_unavailable"  # automatic, and nothing healthy
    error = call(client, "DELETE", f"/admin/proxies/{proxy['id']}", status=409)["error"]
    assert error["code"] == "proxy_in_use" and pinned in error["message"]
    call(client, "POST", "/admin/proxies/assign", {"account_ids": [pinned], "mode": "direct"})
    assert call(client, "POST", "/admin/proxies/batch-delete", {"ids": [proxy["id"], "px_other"]}) == {
        "deleted": 1, "ids": [proxy["id"]], "missing": ["px_other"]}
    listed = call(client, "GET", "/admin/proxies")
    assert listed["proxies"] == [] and {a["id"]: a["proxy"]["mode"] for a in listed["accounts"]} == {pinned: "direct", floating: "automatic"}


def test_the_page_renders_in_both_languages(client: FlaskClient) -> None:
    english = client.get("/dashboard/proxies").get_data(as_text=True)
    assert "Global default and health checks" in english and 'href="/dashboard/proxies" data-nav="proxies" aria-current="page"' in english
    client.set_cookie("codex_proxy_lang", "zh")
    assert "全局默认与健康检测" in client.get("/dashboard/proxies").get_data(as_text=True)
