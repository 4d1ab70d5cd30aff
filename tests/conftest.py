"""Shared fixtures: the fake Codex backend (in a thread of this process) and the real proxy
(a ``mitmdump -s addons/codex.py`` subprocess with its own data folder)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deepmerge import always_merger

from codex_fake import FakeCodexThread, mint_access_token
from tests.support.providers import provider_fakes, provider_fakes_server  # noqa: F401  (the provider fakes, for every test)
from tests.support.proxy import ProxyProcess

PROXY_KEY = "test-proxy-key"


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeCodexThread]:
    fake = FakeCodexThread()
    fake.base_url = fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_server: FakeCodexThread) -> FakeCodexThread:
    """The shared fake, reset to its defaults for every test."""
    fake_server.reset()
    return fake_server


def proxy_config(fake: FakeCodexThread, **overrides: Any) -> dict[str, Any]:
    """A proxy on the fake. Turns go over HTTP SSE unless a test asks for the WebSocket transport
    (tests/e2e/test_websocket_upstream.py), so what each test counts on the fake stays one request
    per turn."""
    base: dict[str, Any] = {
        "server": {"proxy_api_key": PROXY_KEY},
        "api": {"base_url": fake.base_url + "/backend-api"},
        "auth": {"oauth_issuer": fake.base_url},
        "upstream": {"transport": "sse"},
        "client": {"version_feed_url": None},  # tests never ask the real release feed
    }
    return always_merger.merge(base, overrides)


@pytest.fixture(scope="session")
def shared_proxy(fake_server: FakeCodexThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(tmp_path_factory.mktemp("proxy"), proxy_config(fake_server)).start()
    yield proxy
    proxy.stop()


def with_one_account(proxy: ProxyProcess) -> ProxyProcess:
    """``proxy`` with exactly one fresh, active account (chatgpt account id ``acc-1``)."""
    proxy.remove_all_accounts()
    proxy.add_account(mint_access_token(account_id="acc-1", plan="plus", email="one@example.com"), label="one")
    return proxy


@pytest.fixture
def proxy(shared_proxy: ProxyProcess, fake: FakeCodexThread) -> ProxyProcess:
    """The shared proxy with exactly one fresh, active account (chatgpt account id ``acc-1``)."""
    return with_one_account(shared_proxy)


@pytest.fixture
def start_proxy(fake: FakeCodexThread, tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    """A private proxy per test, for tests that change config or kill the process."""
    started: list[ProxyProcess] = []

    def start(name: str = "proxy", tool: str = "mitmdump", args: tuple[str, ...] = (), **config: Any) -> ProxyProcess:
        process = ProxyProcess(tmp_path / name, proxy_config(fake, **config), tool=tool, args=args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def openai_client(proxy: ProxyProcess) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30)


DEFAULT_ROTATION = {"rotation_strategy": "least_used", "session_affinity": True, "plan_routing": True}
DEFAULT_QUOTA = {"warning_thresholds": [80, 95], "skip_exhausted": True, "refresh_interval_minutes": 5}


@pytest.fixture
def pool_proxy(shared_proxy: ProxyProcess, fake: FakeCodexThread) -> ProxyProcess:
    """The shared proxy with no account at all and the default rotation and quota settings."""
    shared_proxy.remove_all_accounts()
    for path, settings in (("/admin/rotation-settings", DEFAULT_ROTATION), ("/admin/quota-settings", DEFAULT_QUOTA)):
        assert shared_proxy.api("POST", path, json=settings).status_code == 200
    return shared_proxy


@pytest.fixture
def pool_client(pool_proxy: ProxyProcess) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=pool_proxy.base_url, api_key=pool_proxy.key, max_retries=0, timeout=30)
