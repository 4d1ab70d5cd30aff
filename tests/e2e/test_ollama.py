"""The Ollama bridge through the real proxy, driven by the official ``ollama`` Python client."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest
from pydantic import BaseModel

from codex_fake import FakeCodexThread, mint_access_token
from core.codex.request import ALLOWED_FIELDS
from tests.conftest import proxy_config
from tests.support.proxy import ProxyProcess
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def ollama_proxy(fake_server: FakeCodexThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = proxy_config(fake_server, ollama={"enabled": True, "port": free_port(), "version": "0.12.6"})
    proxy = ProxyProcess(tmp_path_factory.mktemp("ollama-proxy"), config).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def bridge(ollama_proxy: ProxyProcess, fake: FakeCodexThread) -> ProxyProcess:
    """The Ollama-enabled proxy with one fresh account (``acc-1``)."""
    ollama_proxy.remove_all_accounts()
    ollama_proxy.add_account(mint_access_token(account_id="acc-1", plan="plus"), label="one")
    return ollama_proxy


@pytest.fixture
def client(bridge: ProxyProcess) -> ollama.Client:
    return ollama.Client(host=bridge.ollama_origin, timeout=30)


def last_upstream(fake: FakeCodexThread) -> dict[str, Any]:
    requests = fake.requests("/codex/responses")
    assert requests, "the fake backend received nothing"
    return requests[-1]


def test_chat(client: ollama.Client, fake: FakeCodexThread) -> None:
    response = client.chat(model="gpt-5.4", stream=False, options={"temperature": 0.2, "num_ctx": 4096},
                           messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hello there"}])
    assert response.message.role == "assistant" and response.message.content == "You said: Hello there"
    assert response.done is True and response.done_reason == "stop" and response.model == "gpt-5.4"
    assert response.prompt_eval_count > 0 and response.eval_count > 0
    assert response.total_duration >= response.prompt_eval_duration + response.eval_duration > 0
    sent = last_upstream(fake)
    assert set(sent["body"]) <= ALLOWED_FIELDS and sent["body"]["instructions"] == "Be terse."
    assert sent["headers"]["chatgpt-account-id"] == "acc-1"  # no key was needed on the bridge


def test_chat_stream_ends_with_counts_not_a_repeat(client: ollama.Client, fake: FakeCodexThread) -> None:
    fake.script({"text": ["Hel", "lo, ", "Ollama"]})
    parts = list(client.chat(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(p.message.content or "" for p in parts) == "Hello, Ollama"
    final = parts[-1]
    assert final.done is True and final.done_reason == "stop" and final.message.content == ""
    assert final.eval_count > 0 and final.prompt_eval_count > 0 and final.eval_duration is not None
    assert all(p.done is False for p in parts[:-1])


def test_generate(client: ollama.Client, fake: FakeCodexThread) -> None:
    response = client.generate(model="gpt-5.4", prompt="Write a haiku", system="You are a poet.")
    assert response.response == "You said: Write a haiku" and response.done_reason == "stop"
    assert last_upstream(fake)["body"]["instructions"] == "You are a poet."
    fake.script({"text": ["a", "b", "c"]})
    parts = list(client.generate(model="gpt-5.4", prompt="abc", stream=True))
    assert "".join(p.response for p in parts) == "abc" and parts[-1].done and parts[-1].response == ""
    preload = client.generate(model="gpt-5.4")
    assert preload.done_reason == "load"


def test_tags_show_version_ps(client: ollama.Client, bridge: ProxyProcess) -> None:
    names = [m.model for m in client.list().models]
    assert "gpt-5.4" in names and "gpt-5.5" in names
    show = client.show("gpt-5.4")
    assert "tools" in show.capabilities and "vision" in show.capabilities and "thinking" in show.capabilities
    assert show.modelinfo["gpt.context_length"] == 272000
    assert httpx.get(bridge.ollama_origin + "/api/version").json() == {"version": "0.12.6"}
    client.chat(model="gpt-5.5", messages=[{"role": "user", "content": "x"}], keep_alive="10m")
    running = {m.model: m for m in client.ps().models}
    assert "gpt-5.5" in running and running["gpt-5.5"].context_length == 272000
    client.generate(model="gpt-5.5", keep_alive=0)  # Ollama's "unload now"
    assert "gpt-5.5" not in [m.model for m in client.ps().models]
    with pytest.raises(ollama.ResponseError) as raised:
        client.show("llama3")
    assert raised.value.status_code == 404 and "not found" in raised.value.error


def test_root_answers_like_ollama(bridge: ProxyProcess) -> None:
    assert httpx.get(bridge.ollama_origin + "/").text == "Ollama is running"
    head = httpx.head(bridge.ollama_origin + "/")
    assert head.status_code == 200 and head.content == b""
    assert httpx.get(bridge.ollama_origin + "/api/nope").status_code == 404
    assert httpx.get(bridge.ollama_origin + "/api/chat").status_code == 405


def test_tool_call_round_trip(client: ollama.Client, fake: FakeCodexThread) -> None:
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
          city: The city name
        """
        return "18C"

    fake.script({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "call_w1"}]})
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat(model="gpt-5.4", messages=messages, tools=[get_weather], stream=False)
    call = first.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}
    tool = last_upstream(fake)["body"]["tools"][0]
    assert tool["name"] == "get_weather" and tool["parameters"]["properties"]["city"]["type"] == "string"

    messages += [first.message, {"role": "tool", "tool_name": "get_weather", "content": "18C"}]
    fake.script({"text": "It is 18C."})
    second = client.chat(model="gpt-5.4", messages=messages, tools=[get_weather], stream=False)
    assert second.message.content == "It is 18C."
    items = last_upstream(fake)["body"]["input"]
    calls = [i for i in items if i.get("type") == "function_call"]
    outputs = [i for i in items if i.get("type") == "function_call_output"]
    assert calls[0]["call_id"] == outputs[0]["call_id"] and outputs[0]["output"] == "18C"


def test_tool_calls_stream_with_ids(client: ollama.Client, bridge: ProxyProcess, fake: FakeCodexThread) -> None:
    both = {"tool_calls": [{"name": "a", "arguments": {"x": 1}, "call_id": "call_a"}, {"name": "b", "arguments": {}, "call_id": "call_b"}]}
    fake.script(both, both)
    tools = [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}]
    parts = list(client.chat(model="gpt-5.4", messages=[{"role": "user", "content": "go"}], stream=True, tools=tools))
    calls = [c for p in parts for c in p.message.tool_calls or []]
    assert [(c.function.name, c.function.arguments) for c in calls] == [("a", {"x": 1}), ("b", {})]
    # Ollama ≥ 0.12 also sends call ids and indexes (the Python client does not model them yet).
    raw = httpx.post(bridge.ollama_origin + "/api/chat", timeout=30, json={
        "model": "gpt-5.4", "stream": False, "tools": tools, "messages": [{"role": "user", "content": "go"}]}).json()
    assert [(c["id"], c["function"]["index"]) for c in raw["message"]["tool_calls"]] == [("call_a", 0), ("call_b", 1)]


def test_images(client: ollama.Client, fake: FakeCodexThread) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 16
    client.chat(model="gpt-5.4", stream=False, messages=[{"role": "user", "content": "What is this?", "images": [jpeg]}])
    content = last_upstream(fake)["body"]["input"][0]["content"]
    assert content == [{"type": "input_text", "text": "What is this?"},
                       {"type": "input_image", "image_url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}]
    client.generate(model="gpt-5.4", prompt="and this?", images=[jpeg])
    assert last_upstream(fake)["body"]["input"][0]["content"][1]["type"] == "input_image"


class Country(BaseModel):
    name: str
    capital: str


def test_format_schema_and_json(client: ollama.Client, fake: FakeCodexThread) -> None:
    fake.script({"text": '{"name": "France", "capital": "Paris"}'})
    response = client.chat(model="gpt-5.4", messages=[{"role": "user", "content": "France?"}], format=Country.model_json_schema(), stream=False)
    assert Country.model_validate_json(response.message.content) == Country(name="France", capital="Paris")
    fmt = last_upstream(fake)["body"]["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["strict"] is True and fmt["schema"]["additionalProperties"] is False
    fake.script({"text": '{"ok": true}'})
    assert json.loads(client.generate(model="gpt-5.4", prompt="json", format="json").response) == {"ok": True}
    assert last_upstream(fake)["body"]["text"] == {"format": {"type": "json_object"}}


def test_think(client: ollama.Client, fake: FakeCodexThread) -> None:
    fake.script({"reasoning": "Weighing it.", "text": "42"})
    response = client.chat(model="gpt-5.4", messages=[{"role": "user", "content": "meaning?"}], think="high", stream=False)
    assert response.message.thinking == "Weighing it." and response.message.content == "42"
    assert last_upstream(fake)["body"]["reasoning"] == {"effort": "high", "summary": "auto"}
    fake.script({"reasoning": "Streamed thought.", "text": "ok"})
    parts = list(client.generate(model="gpt-5.4", prompt="x", think=True, stream=True))
    assert "".join(p.thinking or "" for p in parts) == "Streamed thought." and "".join(p.response for p in parts) == "ok"


def test_mid_stream_error_is_an_error_line(client: ollama.Client, fake: FakeCodexThread) -> None:
    fake.script({"text": ["partial ", "answer"], "fail": {"code": "server_error", "message": "boom"}, "fail_after": 4})
    received: list[str] = []
    with pytest.raises(ollama.ResponseError) as raised:
        for part in client.chat(model="gpt-5.4", messages=[{"role": "user", "content": "x"}], stream=True):
            received.append(part.message.content or "")
    assert "partial " in "".join(received) and "boom" in raised.value.error


def test_upstream_rate_limit_before_stream(client: ollama.Client, fake: FakeCodexThread) -> None:
    from codex_fake.faults import usage_limit_429

    fake.fault("acc-1", usage_limit_429(resets_in=60))
    with pytest.raises(ollama.ResponseError) as raised:
        list(client.chat(model="gpt-5.4", messages=[{"role": "user", "content": "x"}], stream=True))
    assert raised.value.status_code == 429


def test_bad_requests(bridge: ProxyProcess, fake: FakeCodexThread) -> None:
    url = bridge.ollama_origin + "/api/chat"
    assert httpx.post(url, content=b"{oops").json()["error"] == "Malformed JSON request body"
    assert httpx.post(url, json={"model": "llama3", "messages": [{"role": "user", "content": "x"}]}).status_code == 404
    assert httpx.post(url, json={"messages": []}).status_code == 400
    assert fake.requests("/codex/responses") == []


def test_openai_routes_need_no_key_on_the_bridge(bridge: ProxyProcess, fake: FakeCodexThread) -> None:
    client = openai.OpenAI(base_url=bridge.ollama_origin + "/v1", api_key="ollama", max_retries=0)
    completion = client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "via v1"}])
    assert completion.choices[0].message.content == "You said: via v1"
    assert "gpt-5.4" in [m.id for m in client.models.list().data]
    main = openai.OpenAI(base_url=bridge.base_url, api_key="ollama", max_retries=0)
    with pytest.raises(openai.AuthenticationError):  # the main port still wants the key
        main.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "x"}])


def test_cors_loopback_origins_only(bridge: ProxyProcess, fake: FakeCodexThread) -> None:
    url = bridge.ollama_origin + "/api/chat"
    local = "http://localhost:5173"
    preflight = httpx.options(url, headers={"Origin": local, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == local
    assert "POST" in preflight.headers["access-control-allow-methods"]
    tags = httpx.get(bridge.ollama_origin + "/api/tags", headers={"Origin": local})
    assert tags.headers["access-control-allow-origin"] == local
    with httpx.stream("POST", url, headers={"Origin": local}, json={"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}]}) as streamed:
        assert streamed.headers["access-control-allow-origin"] == local
        assert streamed.headers["content-type"].startswith("application/x-ndjson")
        assert json.loads(list(streamed.iter_lines())[-1])["done"] is True

    foreign = "https://evil.example"
    assert httpx.options(url, headers={"Origin": foreign}).status_code == 403
    refused = httpx.post(url, headers={"Origin": foreign}, json={"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}]})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    rebinding = httpx.get(bridge.ollama_origin + "/api/tags", headers={"Host": "attacker.example"})
    assert rebinding.status_code == 403  # DNS rebinding: a foreign name must not reach a loopback-only API
    assert len(fake.requests("/codex/responses")) == 1


def test_bridge_is_not_a_proxy(bridge: ProxyProcess) -> None:
    with socket.create_connection(("127.0.0.1", int(bridge.runtime["ollama_listen"][1])), timeout=10) as sock:
        sock.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 405")
    absolute = httpx.get("http://example.com/api/tags", proxy=bridge.ollama_origin)
    assert absolute.status_code == 403  # answered here (refused by the host guard), never fetched


def test_request_log_marks_ollama(client: ollama.Client, bridge: ProxyProcess) -> None:
    client.chat(model="gpt-5.4-low", messages=[{"role": "user", "content": "log me"}], stream=False)
    rows = bridge.request_log("requested_model = ?", "gpt-5.4-low")
    assert rows and rows[0]["protocol"] == "ollama" and rows[0]["path"] == "/api/chat" and rows[0]["status"] == 200


# --- enabling ------------------------------------------------------------------------------------


def test_disabled_by_default(proxy: ProxyProcess) -> None:
    assert proxy.runtime["ollama_listen"] is None
    assert httpx.get(proxy.origin + "/api/tags").status_code == 404


def test_enabled_by_environment(start_proxy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("OLLAMA_BRIDGE_ENABLED", "true")
    monkeypatch.setenv("OLLAMA_BRIDGE_PORT", str(port))
    monkeypatch.setenv("OLLAMA_BRIDGE_VERSION", "9.9.9")
    proxy = start_proxy()
    assert proxy.runtime["ollama_listen"] == ["127.0.0.1", port]
    assert httpx.get(f"http://127.0.0.1:{port}/api/version").json() == {"version": "9.9.9"}


def test_taken_port_leaves_the_main_proxy_running(start_proxy: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proxy = start_proxy(ollama={"enabled": True, "port": taken.getsockname()[1]})
        assert proxy.runtime["ollama_listen"] is None
        assert httpx.get(proxy.origin + "/health").json()["status"] == "ok"
        assert "Ollama bridge not started" in proxy.log()
