"""Providers through the real proxy: management API (keys masked, import/export), model routes and
their failover, key rotation and cooldown, a model's refused parameters, model lists."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from codex_fake import FakeCodexThread
from tests.support.providers import Fakes, add_provider, clear_providers, set_routes, standard_providers
from tests.support.proxy import ProxyProcess


def client_of(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30)


def ask(proxy: ProxyProcess, model: str, text: str = "hi", **extra: Any) -> str:
    answer = client_of(proxy).chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **extra)
    return answer.choices[0].message.content or ""


def provider(proxy: ProxyProcess, provider_id: str) -> dict[str, Any]:
    return proxy.api("GET", f"/admin/providers/{provider_id}").json()["provider"]


# --- management ----------------------------------------------------------------------------------------


def test_add_list_edit_and_delete_keep_keys_masked(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    clear_providers(proxy)
    created = add_provider(proxy, "openai", provider_fakes.openai.base_url, ["sk-proj-test-openai-0001", {"key": "sk-proj-test-openai-0002", "label": "spare"}])
    assert created["id"] == "openai" and created["wire"] == "responses" and created["kind"] == "openai"
    assert [k["masked"] for k in created["keys"]] == ["sk-pro…0001", "sk-pro…0002"] and created["keys"][1]["label"] == "spare"
    assert {m["id"] for m in created["fetched_models"]} >= {"gpt-4o-mini", "o4-mini", "text-embedding-3-small"}
    assert created["models_error"] is None and created["capabilities"] == {"embeddings": True, "images": True}
    listing = proxy.api("GET", "/admin/providers")
    assert "sk-proj-test-openai-0001" not in listing.text and "sk-proj-test-openai-0002" not in listing.text

    edited = proxy.api("PATCH", "/admin/providers/openai", json={"name": "Work OpenAI", "models": ["ft:gpt-4o-mini:acme"], "wire": "chat"})
    assert edited.status_code == 200 and edited.json()["provider"]["name"] == "Work OpenAI"
    assert "ft:gpt-4o-mini:acme" in [m.id for m in client_of(proxy).models.list().data]
    assert proxy.api("PATCH", "/admin/providers/openai", json={"kind": "gemini"}).status_code == 400
    assert proxy.api("PATCH", "/admin/providers/openai", json={"wire": "gemini"}).json()["error"]["message"].startswith("a openai provider speaks")

    key_id = created["keys"][0]["id"]
    assert proxy.api("PATCH", f"/admin/providers/openai/keys/{key_id}", json={"status": "disabled"}).json()["key"]["status"] == "disabled"
    assert proxy.api("DELETE", f"/admin/providers/openai/keys/{key_id}").status_code == 200
    assert [k["label"] for k in provider(proxy, "openai")["keys"]] == ["spare"]
    assert proxy.api("DELETE", "/admin/providers/openai").status_code == 200
    assert proxy.api("GET", "/admin/providers/openai").status_code == 404


@pytest.mark.parametrize(("body", "message"), [
    ({"kind": "bedrock"}, "'kind' must be one of"),
    ({"kind": "custom"}, "'base_url' is required for a custom provider"),
    ({"kind": "openai", "base_url": "ftp://x"}, "must start with http"),
    ({"kind": "openai", "id": "chatgpt"}, "'id' must be"),
    ({"kind": "openai", "keys": ["has space"]}, "without spaces"),
])  # fmt: skip
def test_bad_providers_are_refused_clearly(proxy: ProxyProcess, body: dict[str, Any], message: str) -> None:
    clear_providers(proxy)
    response = proxy.api("POST", "/admin/providers", json=body)
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_export_and_import_move_providers_and_routes(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    providers = standard_providers(proxy, provider_fakes)
    set_routes(proxy, {"pattern": "claude-*", "targets": [{"provider": "chatgpt"}]}, {"pattern": "fast", "targets": ["openrouter", "openai:gpt-4o-mini"]})
    exported = proxy.api("GET", "/admin/providers/export")
    assert exported.headers["cache-control"] == "no-store"
    data = exported.json()
    assert {p["id"]: p["keys"] for p in data["providers"]}["anthropic"] == ["sk-ant-api03-test-0001"]
    clear_providers(proxy)
    result = proxy.api("POST", "/admin/providers/import", json=data).json()
    assert result == {"added": 4, "updated": 0, "failed": 0, "errors": []}
    assert [p["id"] for p in proxy.api("GET", "/admin/providers").json()["providers"]] == list(providers)
    assert proxy.api("GET", "/admin/model-routes").json()["routes"] == data["routes"]
    again = proxy.api("POST", "/admin/providers/import", json={"providers": [{"id": "openai", "kind": "openai", "keys": ["sk-proj-test-openai-0002"]}, {"kind": "x"}]}).json()
    assert again["updated"] == 1 and again["failed"] == 1 and len(provider(proxy, "openai")["keys"]) == 2


def test_routes_are_validated_and_explained(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    standard_providers(proxy, provider_fakes)
    bad = proxy.api("PUT", "/admin/model-routes", json={"routes": [{"pattern": "x", "targets": ["nowhere"]}]})
    assert bad.status_code == 400 and "unknown target 'nowhere'" in bad.json()["error"]["message"]
    set_routes(proxy, {"pattern": "team-*", "targets": ["anthropic:claude-3-5-haiku-20241022", "chatgpt:gpt-5.4-mini"]})

    def where(model: str) -> dict[str, Any]:
        return proxy.api("GET", f"/admin/model-routes/resolve?model={model}").json()

    assert where("team-small") == {"model": "team-small", "rule": "route", "targets": [
        {"provider": "anthropic", "model": "claude-3-5-haiku-20241022"}, {"provider": "chatgpt", "model": "gpt-5.4-mini"}]}  # fmt: skip
    assert where("gemini/gemini-2.0-flash")["targets"] == [{"provider": "gemini", "model": "gemini-2.0-flash"}]
    assert where("gemini-2.5-flash")["rule"] == "listed"
    assert where("gpt-5.4")["targets"] == [{"provider": "chatgpt", "model": "gpt-5.4"}]
    assert where("claude-opus-4-9")["targets"] == [{"provider": "chatgpt", "model": "gpt-5.5"}]  # the pool's family alias
    assert ask(proxy, "team-small", "hello team") == "You said: hello team"
    assert provider_fakes.anthropic.requests("/v1/messages")[-1]["body"]["model"] == "claude-3-5-haiku-20241022"


def test_model_lists_include_provider_models(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    standard_providers(proxy, provider_fakes)
    set_routes(proxy, {"pattern": "house-model", "targets": ["openrouter:deepseek/deepseek-r1"]})
    ids = [m.id for m in client_of(proxy).models.list().data]
    assert ids.index("gpt-5.4") < ids.index("gpt-4o-mini")  # the pool's first
    assert {"claude-sonnet-4-5-20250929", "gemini-2.5-flash", "deepseek/deepseek-r1", "house-model"} <= set(ids)
    gemini = proxy.api("GET", "/v1beta/models").json()["models"]
    assert "models/claude-3-5-haiku-20241022" in [m["name"] for m in gemini]
    assert proxy.api("PATCH", "/admin/providers/anthropic", json={"enabled": False}).status_code == 200
    assert "claude-3-5-haiku-20241022" not in [m.id for m in client_of(proxy).models.list().data]


# --- failover, keys, refused parameters -------------------------------------------------------------------


def test_route_failover_from_a_failing_provider_to_the_pool(proxy: ProxyProcess, fake: FakeCodexThread, provider_fakes: Fakes) -> None:
    standard_providers(proxy, provider_fakes)
    set_routes(proxy, {"pattern": "resilient", "targets": ["openai:gpt-4o-mini", "chatgpt:gpt-5.4"]})
    provider_fakes.openai.fault("sk-proj-test-openai-0001", 503, times=2)  # one retry on the provider's only key, then the pool
    before = len(fake.requests("/codex/responses"))
    assert ask(proxy, "resilient", "fail over") == "You said: fail over"
    assert len(fake.requests("/codex/responses")) == before + 1 and len(provider_fakes.openai.requests("/chat/completions")) == 1


def test_route_failover_from_an_empty_pool_to_a_provider(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    standard_providers(proxy, provider_fakes)
    proxy.remove_all_accounts()
    set_routes(proxy, {"pattern": "gpt-5.4", "targets": ["chatgpt", "openrouter:meta-llama/llama-3.3-70b-instruct"]})
    assert ask(proxy, "gpt-5.4", "no accounts") == "You said: no accounts"
    with pytest.raises(openai.AuthenticationError, match="No ChatGPT account"):
        ask(proxy, "gpt-5.4-mini")  # not routed: the pool's own error


def test_keys_rotate_and_a_rate_limited_key_rests(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    clear_providers(proxy)
    add_provider(proxy, "openai", provider_fakes.openai.base_url, ["sk-proj-test-openai-0001", "sk-proj-test-openai-0002"], wire="chat")
    provider_fakes.openai.reset()
    for text in ("one", "two", "three", "four"):
        assert ask(proxy, "gpt-4o-mini", text) == f"You said: {text}"
    used = [r["key"] for r in provider_fakes.openai.requests("/chat/completions")]
    assert used[0] != used[1] and used[:2] == used[2:]  # each key in turn

    provider_fakes.openai.fault(used[0], 429)
    provider_fakes.openai.reset_requests()
    assert ask(proxy, "gpt-4o-mini", "five") == "You said: five"
    assert [r["key"] for r in provider_fakes.openai.requests("/chat/completions")] == used[:2]  # the other key at once
    resting = next(k for k in provider(proxy, "openai")["keys"] if k["masked"].endswith(used[0][-4:]))
    assert resting["status"] == "active" and resting["cooldown_until"] > time.time() + 1  # the fake's Retry-After: 2
    assert "Rate limit" in resting["last_error"]
    provider_fakes.openai.reset_requests()
    ask(proxy, "gpt-4o-mini", "six")
    assert [r["key"] for r in provider_fakes.openai.requests("/chat/completions")] == [used[1]]  # the resting key waits


def test_a_refused_key_is_set_aside(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    clear_providers(proxy)
    add_provider(proxy, "openai", provider_fakes.openai.base_url, ["sk-proj-test-openai-0001", "sk-proj-revoked-0000"], wire="chat")
    for text in ("one", "two", "three"):
        assert ask(proxy, "gpt-4o-mini", text) == f"You said: {text}"
    keys = {k["masked"]: k for k in provider(proxy, "openai")["keys"]}
    assert keys["sk-pro…0000"]["status"] == "invalid" and "Incorrect API key" in keys["sk-pro…0000"]["last_error"]
    assert sum(r["key"] == "sk-proj-revoked-0000" for r in provider_fakes.openai.requests()) == 1


def test_every_key_refused_is_the_proxys_problem_not_the_clients(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    standard_providers(proxy, provider_fakes)
    provider_fakes.anthropic.fault("sk-ant-api03-test-0001", 401)
    with pytest.raises(openai.APIStatusError) as caught:
        ask(proxy, "claude-3-5-haiku-20241022")
    assert caught.value.status_code == 502 and "invalid x-api-key" in caught.value.message
    with pytest.raises(openai.APIStatusError, match="no usable API key") as again:
        ask(proxy, "anthropic/claude-3-5-haiku-20241022")
    assert again.value.status_code == 503


def test_a_parameter_the_model_refuses_is_dropped_and_remembered(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    clear_providers(proxy)
    add_provider(proxy, "openai", provider_fakes.openai.base_url, ["sk-proj-test-openai-0001"], wire="chat")
    provider_fakes.openai.reset()
    assert ask(proxy, "o4-mini", "cold", temperature=0.2) == "You said: cold"
    bodies = [r["body"] for r in provider_fakes.openai.requests("/chat/completions")]
    assert [b.get("temperature") for b in bodies] == [0.2, None]
    assert ask(proxy, "gpt-4o-mini", "plain", reasoning_effort="high") == "You said: plain"  # not a reasoning model
    assert "reasoning_effort" not in provider_fakes.openai.requests("/chat/completions")[-1]["body"]
    ask(proxy, "o4-mini", "again", temperature=0.2)
    assert "temperature" not in provider_fakes.openai.requests("/chat/completions")[-1]["body"]  # at once this time


def test_a_mid_stream_provider_error_ends_the_stream_in_the_clients_protocol(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    standard_providers(proxy, provider_fakes)
    provider_fakes.anthropic.script({"text": "one two three four five", "stream_error": {"after": 5}})
    chunks = client_of(proxy).chat.completions.create(model="claude-3-5-haiku-20241022", stream=True,
                                                      messages=[{"role": "user", "content": "x"}])  # fmt: skip
    with pytest.raises(openai.APIError, match="Overloaded"):
        for _ in chunks:
            pass
    rows = proxy.request_log("requested_model = ? AND error LIKE ?", "claude-3-5-haiku-20241022", "%Overloaded%")
    assert rows and rows[-1]["provider"] == "anthropic" and rows[-1]["status"] == 200  # it had begun: the error ended the stream


def test_provider_keys_never_reach_a_flow_or_the_request_log(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    standard_providers(proxy, provider_fakes)
    ask(proxy, "gpt-4o-mini")
    log = proxy.log()
    for secret in ("sk-proj-test-openai-0001", "sk-ant-api03-test-0001", "AIzaSy-test-gemini-0001", "sk-or-v1-test-0001"):
        assert secret not in log
    rows = proxy.request_log("provider = ?", "openai")
    assert rows and all("sk-proj-test" not in json.dumps(row) for row in rows)


def test_compaction_stays_with_the_pool(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    standard_providers(proxy, provider_fakes)
    headers = {"Authorization": f"Bearer {proxy.key}"}
    body = {"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "long story"}]}]}
    refused = httpx.post(proxy.base_url + "/responses/compact", json={**body, "model": "openrouter/meta-llama/llama-3.3-70b-instruct"},
                         headers=headers, timeout=30)  # fmt: skip
    assert refused.status_code == 400 and "cannot compact" in refused.json()["error"]["message"]
    set_routes(proxy, {"pattern": "mixed", "targets": ["openai:gpt-4o-mini", "chatgpt:gpt-5.4"]})
    compacted = httpx.post(proxy.base_url + "/responses/compact", json={**body, "model": "mixed"}, headers=headers, timeout=30)
    assert compacted.status_code == 200 and compacted.json()["output"][-1]["type"] == "compaction"
