"""The provider fakes for the tests (started once per session, reset per test) and helpers that
manage providers and routes through the proxy's management API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from provider_fakes import FakeAnthropic, FakeGemini, FakeOpenAI, FakeOpenRouter
from tests.support.proxy import ProxyProcess


@dataclass
class Fakes:
    openai: FakeOpenAI
    anthropic: FakeAnthropic
    gemini: FakeGemini
    openrouter: FakeOpenRouter

    def all(self) -> list[Any]:
        return [self.openai, self.anthropic, self.gemini, self.openrouter]


@pytest.fixture(scope="session")
def provider_fakes_server() -> Iterator[Fakes]:
    fakes = Fakes(FakeOpenAI(("sk-proj-test-openai-0001", "sk-proj-test-openai-0002")), FakeAnthropic(("sk-ant-api03-test-0001",)), FakeGemini(("AIzaSy-test-gemini-0001",)),
                  FakeOpenRouter(("sk-or-v1-test-0001", "sk-or-v1-test-0002")))  # fmt: skip
    for fake in fakes.all():
        fake.start()
    yield fakes
    for fake in fakes.all():
        fake.stop()


@pytest.fixture
def provider_fakes(provider_fakes_server: Fakes) -> Fakes:
    for fake in provider_fakes_server.all():
        fake.reset()
    return provider_fakes_server


def clear_providers(proxy: ProxyProcess) -> None:
    assert proxy.api("PUT", "/admin/model-routes", json={"routes": []}).status_code == 200
    for provider in proxy.api("GET", "/admin/providers").json()["providers"]:
        assert proxy.api("DELETE", f"/admin/providers/{provider['id']}").status_code == 200


def add_provider(proxy: ProxyProcess, kind: str, base_url: str, keys: list[str], **fields: Any) -> dict[str, Any]:
    response = proxy.api("POST", "/admin/providers", json={"kind": kind, "base_url": base_url, "keys": keys, **fields})
    assert response.status_code == 201, response.text
    return response.json()["provider"]


def set_routes(proxy: ProxyProcess, *routes: dict[str, Any]) -> None:
    response = proxy.api("PUT", "/admin/model-routes", json={"routes": list(routes)})
    assert response.status_code == 200, response.text


def standard_providers(proxy: ProxyProcess, fakes: Fakes) -> dict[str, dict[str, Any]]:
    """One provider of each kind on its fake; the OpenAI one speaks chat completions."""
    clear_providers(proxy)
    return {
        "openai": add_provider(proxy, "openai", fakes.openai.base_url, ["sk-proj-test-openai-0001"], wire="chat"),
        "anthropic": add_provider(proxy, "anthropic", fakes.anthropic.base_url, ["sk-ant-api03-test-0001"]),
        "gemini": add_provider(proxy, "gemini", fakes.gemini.base_url, ["AIzaSy-test-gemini-0001"]),
        "openrouter": add_provider(proxy, "openrouter", fakes.openrouter.base_url, ["sk-or-v1-test-0001"]),
    }
