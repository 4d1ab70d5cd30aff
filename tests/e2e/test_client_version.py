"""client.app_version kept current by the release feed, in the running proxy: a newer release
reaches the upstream headers, the model list fetch and the dashboard without a restart; a feed
that goes away leaves the last good version in place and is logged once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from codex_fake import FakeCodexThread, mint_access_token
from tests.support.proxy import ProxyProcess
from tests.support.release_feed import FakeReleaseFeed


@pytest.fixture
def feed() -> Iterator[FakeReleaseFeed]:
    server = FakeReleaseFeed("0.172.0").start()
    yield server
    server.stop()


def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def status(proxy: ProxyProcess) -> dict[str, Any]:
    response = proxy.api("GET", "/admin/settings")
    assert response.status_code == 200, response.text
    return response.json()["client_version"]


def test_the_feed_version_is_applied_live(start_proxy: Callable[..., ProxyProcess], fake: FakeCodexThread,
                                          feed: FakeReleaseFeed) -> None:
    proxy = start_proxy(client={"version_feed_url": feed.feed_url, "version_check_minutes": 0.02})
    proxy.add_account(mint_access_token(account_id="acc-1", plan="plus", email="one@example.com"))
    until(lambda: status(proxy)["version"] == "0.172.0")
    # The plan's model list is asked for again with the new version.
    until(lambda: any(r["query"].get("client_version") == "0.172.0" for r in fake.requests("/codex/models")))

    fake.script({"text": ["ok"]})
    from openai import OpenAI

    client = OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30)
    client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
    sent = fake.requests("/codex/responses")[-1]["headers"]
    assert sent["version"] == "0.172.0" and sent["user-agent"].startswith("codex_cli_rs/0.172.0 (")

    page = proxy.api("GET", "/dashboard/settings").text
    assert 'id="client-version-value">0.172.0<' in page and feed.feed_url in page

    feed.version = "0.173.0"  # a release while the proxy runs
    until(lambda: status(proxy)["version"] == "0.173.0")

    feed.stop()
    until(lambda: status(proxy)["error"])
    time.sleep(3)  # a few more failing checks (every 1.2 s)
    state = status(proxy)
    assert state["version"] == "0.173.0" and state["latest"] == "0.173.0" and state["from_feed"]
    assert proxy.log().count("release feed") == 1, proxy.log()
    assert "keeping Codex client version 0.173.0" in proxy.log()
