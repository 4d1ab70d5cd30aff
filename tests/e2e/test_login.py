"""Logging in through the real proxy against the fake OAuth server: browser PKCE (with the callback
listener, and the pasted-URL path) and the device-code flow."""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from codex_fake import FakeCodexThread
from tests.support.accounts import wait_for
from tests.support.proxy import ProxyProcess
from tests.support.servers import free_port

StartProxy = Callable[..., ProxyProcess]


@pytest.fixture
def login_proxy(start_proxy: StartProxy) -> ProxyProcess:
    """A proxy whose OAuth redirect URI is on a free port (tests run in parallel)."""
    return start_proxy(auth={"oauth_redirect_uri": f"http://localhost:{free_port()}/auth/callback"})


def start(proxy: ProxyProcess) -> dict[str, str]:
    response = proxy.api("GET", "/auth/login")
    assert response.status_code == 200, response.text
    return response.json()


def test_browser_pkce_login_end_to_end(login_proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    fake.configure(next_login={"account_id": "acc-browser", "plan": "pro", "email": "browser@example.com"})
    started = start(login_proxy)
    url = started["auth_url"]
    assert url.startswith(fake.base_url + "/oauth/authorize?response_type=code&client_id=app_EMoamEEZ73f0CkXaXp7hrann&")
    assert "scope=openid%20profile%20email%20offline_access" in url and "+" not in url  # spaces as %20
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == started["redirect_uri"] and query["state"] == started["state"]
    assert started["listening"] is True

    page = httpx.get(url, follow_redirects=True, timeout=30)  # the browser: authorize → 302 → our listener
    assert page.status_code == 200 and "browser@example.com" in page.text and "Logged in" in page.text
    accounts = login_proxy.accounts()
    assert [(a["chatgpt_account_id"], a["plan"], a["email"], a["has_refresh_token"]) for a in accounts] == [
        ("acc-browser", "pro", "browser@example.com", True)
    ]
    status = login_proxy.api("GET", f"/auth/login/status?state={started['state']}").json()
    assert status["status"] == "completed" and status["account_id"] == accounts[0]["id"]
    exchange = [r["body"] for r in fake.requests("/oauth/token")][-1]
    assert exchange["grant_type"] == "authorization_code" and exchange["redirect_uri"] == started["redirect_uri"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(exchange["code_verifier"].encode()).digest()).rstrip(b"=").decode()
    assert challenge == query["code_challenge"]
    port = urlsplit(started["redirect_uri"]).port
    wait_for(lambda: _refused(port), what="the callback listener to close once no login waits")


def _refused(port: int | None) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port or 0)) != 0


def test_pasting_the_redirected_url_completes_a_remote_login(login_proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    fake.configure(next_login={"account_id": "acc-pasted", "plan": "team"})
    started = start(login_proxy)
    authorize = httpx.get(started["auth_url"], follow_redirects=False, timeout=30)
    assert authorize.status_code == 302
    redirected = authorize.headers["location"]  # what the user copies from the browser's address bar
    done = login_proxy.api("POST", "/auth/login/callback", json={"url": redirected})
    assert done.status_code == 201, done.text
    assert done.json()["account"]["chatgpt_account_id"] == "acc-pasted" and "access_token" not in done.text
    again = login_proxy.api("POST", "/auth/login/callback", json={"url": redirected})
    assert again.status_code == 400 and "already" in again.json()["error"]["message"]
    forged = login_proxy.api("POST", "/auth/login/callback", json={"url": redirected.replace("state=", "state=x")})
    assert forged.status_code == 400 and "state" in forged.json()["error"]["message"]
    assert login_proxy.api("POST", "/auth/login/callback", json={"url": "http://localhost/"}).status_code == 400
    denied = start(login_proxy)
    refusal = login_proxy.api("POST", "/auth/login/callback",
                              json={"url": f"{denied['redirect_uri']}?error=access_denied&error_description=nope&state={denied['state']}"})
    assert refusal.status_code == 400 and "nope" in refusal.json()["error"]["message"]
    assert login_proxy.api("POST", "/auth/login/callback", json={"url": redirected}, headers={"Authorization": "Bearer x"}).status_code == 401


def test_the_login_link_redirects_to_the_authorize_page(login_proxy: ProxyProcess) -> None:
    response = httpx.get(login_proxy.origin + "/auth/login?redirect=1", follow_redirects=False)  # this machine: no key
    assert response.status_code == 302 and "/oauth/authorize?" in response.headers["location"]


def test_device_code_login(login_proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    fake.configure(next_login={"account_id": "acc-device", "plan": "plus", "email": "device@example.com"})
    started = login_proxy.api("POST", "/auth/login/device")
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["verification_url"] == fake.base_url + "/codex/device" and "-" in body["user_code"]
    status_path = f"/auth/login/device/{body['login_id']}"
    assert login_proxy.api("GET", status_path).json()["status"] == "pending"
    assert fake.approve_device(body["user_code"])  # the user typed the code in the browser
    done = wait_for(lambda: (s := login_proxy.api("GET", status_path).json())["status"] == "completed" and s,
                    timeout=15, what="the device login")
    [account] = login_proxy.accounts()
    assert done["account_id"] == account["id"] and account["email"] == "device@example.com"
    polls = fake.requests("/api/accounts/deviceauth/token")
    assert polls and all(p["body"]["device_auth_id"] for p in polls)
    exchange = fake.requests("/oauth/token")[-1]["body"]
    assert exchange["redirect_uri"] == fake.base_url + "/deviceauth/callback"
    assert login_proxy.api("GET", "/auth/login/device/nope").status_code == 404
