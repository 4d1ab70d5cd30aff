"""The account management API (``/auth/accounts``) against a real proxy and SQLite file."""

from __future__ import annotations

import time

import sqlite_utils

from codex_fake import FakeCodexThread, mint_access_token, mint_refresh_token
from tests.support.proxy import ProxyProcess


def test_add_list_delete(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    token = mint_access_token(account_id="acc-add", plan="pro", email="pro@example.com")
    created = proxy.api("POST", "/auth/accounts", json={"token": token, "label": "pro one"})
    assert created.status_code == 201
    account = created.json()["account"]
    assert account["email"] == "pro@example.com" and account["plan"] == "pro" and account["status"] == "active"
    assert account["chatgpt_account_id"] == "acc-add" and account["label"] == "pro one" and account["expires_at"] > time.time()

    again = proxy.api("POST", "/auth/accounts", json={"token": token})
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["account"]["label"] == "pro one"

    listed = proxy.api("GET", "/auth/accounts")
    assert listed.status_code == 200
    assert token not in listed.text and "access_token" not in listed.text
    ids = [a["id"] for a in listed.json()["accounts"]]
    assert account["id"] in ids and len(ids) == 2

    assert proxy.api("DELETE", f"/auth/accounts/{account['id']}").status_code == 200
    assert proxy.api("DELETE", f"/auth/accounts/{account['id']}").status_code == 404
    assert account["id"] not in [a["id"] for a in proxy.accounts()]


def test_add_by_refresh_token(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    refresh = mint_refresh_token("acc-rt", plan="team", email="team@example.com")
    response = proxy.api("POST", "/auth/accounts", json={"refreshToken": refresh})
    assert response.status_code == 201, response.text
    account = response.json()["account"]
    assert account["chatgpt_account_id"] == "acc-rt" and account["plan"] == "team" and account["has_refresh_token"]
    assert fake.refresh_count("acc-rt") == 1
    db = sqlite_utils.Database(proxy.data_dir / "codex-proxy.db")
    row = db["accounts"].get(account["id"])
    assert row["refresh_token"] and row["refresh_token"] != refresh  # the rotated token is what was stored


def test_import_counts(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    existing = mint_access_token(account_id="acc-1", plan="plus", email="one@example.com")
    response = proxy.api("POST", "/auth/accounts/import", json={"accounts": [
        {"token": mint_access_token(account_id="acc-i1")},
        {"refreshToken": mint_refresh_token("acc-i2"), "label": "spare"},
        {"token": existing},
        {"token": "not-a-jwt"},
        {"label": "nothing"},
        "junk",
    ]})
    assert response.status_code == 200
    result = response.json()
    assert (result["added"], result["updated"], result["failed"]) == (2, 1, 3)
    assert [e["index"] for e in result["errors"]] == [3, 4, 5]


def test_rejects_bad_input_and_missing_key(proxy: ProxyProcess) -> None:
    assert proxy.api("POST", "/auth/accounts", json={"token": "abc"}).status_code == 400
    expired = mint_access_token(account_id="acc-old", expires_in=-60)
    response = proxy.api("POST", "/auth/accounts", json={"token": expired})
    assert response.status_code == 400 and "expired" in response.json()["error"]["message"]
    assert proxy.api("POST", "/auth/accounts", content=b"[]", headers={"Content-Type": "application/json"}).status_code == 400
    assert proxy.api("GET", "/auth/accounts", headers={"Authorization": "Bearer wrong"}).status_code == 401
    unknown = proxy.api("GET", "/auth/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_dashboard_pages_hold_no_secrets(proxy: ProxyProcess) -> None:
    """The pages themselves (tests/browser/ clicks through them): no key, no token."""
    import re

    import httpx

    token = re.compile(r"eyJ[\w-]{10,}\.[\w-]+")  # a JWT; the pages only mention "eyJ…" as what a token looks like
    with httpx.Client(base_url=proxy.origin) as browser:
        for path in ("/", "/dashboard/connect", "/dashboard/settings", "/dashboard/logs", "/dashboard/usage"):
            page = browser.get(path)
            assert page.status_code == 200 and proxy.key not in page.text and not token.search(page.text), path
        assert proxy.base_url in browser.get("/dashboard/connect").text
        listed = browser.get("/auth/accounts").text  # the session cookie the pages gave stands in for the key
        assert "one@example.com" in listed and not token.search(listed)
