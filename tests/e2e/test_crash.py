"""kill -9 of the real proxy process in the middle of a token refresh, then a restart.

Refresh tokens rotate: the server kills the presented one when it answers. What a crash can cost
therefore depends on where it lands (core/accounts/tokens.py):

* before the server acted on the request (not sent yet, or still queued there): nothing — the
  write-ahead marker makes the restart redeem the same stored token at once;
* after the new tokens were committed: nothing — the restart uses them;
* after the server rotated but before its answer was committed: the successor died with the
  process. With a strict single-use server (auth.openai.com as far as anyone has observed) the
  refresh token is lost — the account stays, keeps serving on its access token until that
  expires, and is reported as needing a login. With a reuse interval (Auth0's rotation overlap)
  the restart recovers it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
import sqlite_utils

from codex_fake import FakeCodexThread, mint_access_token, mint_refresh_token
from tests.support.accounts import account, add, chat, served, wait_for
from tests.support.proxy import ProxyProcess

StartProxy = Callable[..., ProxyProcess]
REFRESH_NOW = {"refresh_margin_seconds": 7200}  # the fake's tokens live 1h: a 2h margin refreshes at once


def row(proxy: ProxyProcess, name: str) -> dict[str, Any]:
    return next(sqlite_utils.Database(proxy.data_dir / "codex-proxy.db")["accounts"].rows_where("chatgpt_account_id = ?", [name]))


def presented(fake: FakeCodexThread) -> list[str]:
    """The refresh tokens the OAuth server was shown, in order."""
    return [r["body"]["refresh_token"] for r in fake.requests("/oauth/token") if r["body"].get("grant_type") == "refresh_token"]


def answers(proxy: ProxyProcess, text: str) -> str:
    return chat(openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30), text)


def start_refresh(start_proxy: StartProxy, fake: FakeCodexThread, **auth: Any) -> tuple[ProxyProcess, str]:
    """A proxy that refreshes acc-crash as soon as it is added, stuck mid-refresh; returns the
    refresh token in flight once the write-ahead marker is on disk."""
    proxy = start_proxy(auth={**REFRESH_NOW, **auth})
    add(proxy, "acc-crash")
    marked = wait_for(lambda: (r := row(proxy, "acc-crash"))["refresh_started_at"] and r, what="the write-ahead marker")
    return proxy, marked["refresh_token"]


def restart_and_settle(proxy: ProxyProcess, fake: FakeCodexThread) -> dict[str, Any]:
    proxy.kill9()
    fake.configure(token_delay_ms=0, token_delay_phase="before")
    proxy.start()
    return wait_for(lambda: (r := row(proxy, "acc-crash"))["refresh_started_at"] is None and r, what="the recovery")


def assert_live(proxy: ProxyProcess, fake: FakeCodexThread, token: str) -> None:
    """``token`` is what the store holds, and the server still honours it (a forced refresh works)."""
    assert row(proxy, "acc-crash")["refresh_token"] == token
    forced = proxy.api("POST", f"/auth/accounts/{account(proxy, 'acc-crash')['id']}/refresh")
    assert forced.status_code == 200, forced.text
    assert presented(fake)[-1] == token


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A token endpoint that accepts connections and never reads them: the request is never seen."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/oauth/token"


def test_killed_before_the_request_reached_the_server(start_proxy: StartProxy, fake: FakeCodexThread, blackhole: str) -> None:
    proxy, in_flight = start_refresh(start_proxy, fake, oauth_token_url=blackhole)
    assert presented(fake) == []
    proxy.config["auth"]["oauth_token_url"] = None  # the restart reaches the real endpoint
    settled = restart_and_settle(proxy, fake)
    assert presented(fake) == [in_flight]  # the marker made the restart redeem exactly that token
    assert settled["refresh_token"] != in_flight and settled["refresh_error"] is None
    assert_live(proxy, fake, settled["refresh_token"])
    assert answers(proxy, "after the crash") == "You said: after the crash"


def test_killed_while_the_server_held_the_request_unanswered(start_proxy: StartProxy, fake: FakeCodexThread) -> None:
    fake.configure(token_delay_ms=5000, token_delay_phase="before")  # the server acts only after the delay
    proxy, in_flight = start_refresh(start_proxy, fake)
    wait_for(lambda: fake.refresh_count("acc-crash") == 1, what="the request to reach the server")
    settled = restart_and_settle(proxy, fake)  # the dropped connection cancelled the grant
    assert presented(fake) == [in_flight, in_flight]
    assert settled["refresh_token"] != in_flight and settled["refresh_error"] is None
    assert_live(proxy, fake, settled["refresh_token"])


def test_killed_after_the_new_tokens_were_committed(start_proxy: StartProxy, fake: FakeCodexThread) -> None:
    proxy = start_proxy(auth=REFRESH_NOW)
    original = mint_refresh_token("acc-crash")
    token = mint_access_token(account_id="acc-crash")
    proxy.add_account(token, original)
    committed = wait_for(lambda: (r := row(proxy, "acc-crash"))["refresh_token"] != original and r, what="the commit")
    proxy.kill9()  # the instant the successor is on disk
    assert committed["refresh_started_at"] is None and committed["access_token"] != token
    proxy.config["auth"]["refresh_margin_seconds"] = 300  # nothing is due after the restart
    proxy.start()
    assert row(proxy, "acc-crash")["refresh_token"] == committed["refresh_token"]
    assert presented(fake) == [original]  # nothing to recover: the restart did not refresh again
    assert_live(proxy, fake, committed["refresh_token"])


def test_killed_after_the_server_rotated_strict_single_use(start_proxy: StartProxy, fake: FakeCodexThread) -> None:
    """The one window a client cannot close alone. The account is kept and keeps serving; only
    its refresh token is gone, and the proxy says so."""
    fake.configure(token_delay_ms=5000, token_delay_phase="after")  # rotate, then answer late
    proxy, in_flight = start_refresh(start_proxy, fake)
    wait_for(lambda: fake.refresh_count("acc-crash") == 1, what="the server to rotate")
    settled = restart_and_settle(proxy, fake)
    assert presented(fake) == [in_flight, in_flight]
    assert settled["refresh_token"] == in_flight and "interrupted" in settled["refresh_error"]
    kept = account(proxy, "acc-crash")
    assert kept["status"] == "active" and kept["needs_login"]  # its access token still has an hour
    assert answers(proxy, "still serving") == "You said: still serving"
    assert served(fake) == ["acc-crash"]
    assert fake.refresh_count("acc-crash") == 2  # and it does not keep hammering a dead token


def test_killed_after_the_server_rotated_with_a_reuse_interval(start_proxy: StartProxy, fake: FakeCodexThread) -> None:
    fake.configure(token_delay_ms=5000, token_delay_phase="after", refresh_reuse_interval_seconds=60)
    proxy, in_flight = start_refresh(start_proxy, fake)
    wait_for(lambda: fake.refresh_count("acc-crash") == 1, what="the server to rotate")
    settled = restart_and_settle(proxy, fake)
    assert presented(fake) == [in_flight, in_flight]  # re-presented within the overlap: honoured
    assert settled["refresh_token"] != in_flight and settled["refresh_error"] is None
    assert_live(proxy, fake, settled["refresh_token"])
