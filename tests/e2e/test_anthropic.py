"""Anthropic Messages through the real proxy, driven by the official ``anthropic`` SDK."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import httpx
import pytest

from codex_fake import FakeCodexThread, mint_access_token
from codex_fake.faults import ban_403, empty_completion, incomplete, usage_limit_429
from core.codex.request import ALLOWED_FIELDS
from tests.support.proxy import ProxyProcess

MODEL = "claude-sonnet-4-6"
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\nfake-pixel").decode()
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
THINKING = {"type": "enabled", "budget_tokens": 10000}


@pytest.fixture
def client(proxy: ProxyProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.origin, api_key=proxy.key, max_retries=0, timeout=30)


def upstream(fake: FakeCodexThread) -> list[dict[str, Any]]:
    return fake.requests("/codex/responses")


def last_body(fake: FakeCodexThread) -> dict[str, Any]:
    requests = upstream(fake)
    assert requests, "the fake backend received nothing"
    return requests[-1]["body"]


def assert_backend_safe(body: dict[str, Any]) -> None:
    assert set(body) <= ALLOWED_FIELDS, f"fields the backend rejects: {set(body) - ALLOWED_FIELDS}"
    assert body["stream"] is True and body["store"] is False


def raw_post(proxy: ProxyProcess, body: bytes | dict[str, Any], path: str = "/v1/messages", key: str | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"x-api-key": proxy.key if key is None else key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    return httpx.post(proxy.origin + path, content=content, headers=headers, timeout=30)


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events, name = [], ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


# --- answers ------------------------------------------------------------------------------------------


def test_messages_create(client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=1024, system="Be terse.", messages=[{"role": "user", "content": "Hello there"}],
        stop_sequences=["END"], metadata={"user_id": "someone"}, cache_control={"type": "ephemeral"},
        extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 40},
    )
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "You said: Hello there"
    assert message.model == MODEL and message.id.startswith("msg_")
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0 and message.usage.cache_creation_input_tokens == 0

    sent = upstream(fake)[-1]
    body = sent["body"]
    assert_backend_safe(body)
    for field in ("max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "metadata", "max_output_tokens", "cache_control"):
        assert field not in body
    assert body["model"] == "gpt-5.4" and body["instructions"] == "Be terse."
    assert body["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}]
    assert body["prompt_cache_key"].startswith("cp_")
    assert sent["headers"]["chatgpt-account-id"] == "acc-1" and sent["headers"]["authorization"].startswith("Bearer ey")


def test_messages_stream_text(client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    fake.script({"text": ["Hel", "lo, ", "wor", "ld!"]})
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "hi"}]) as stream:
        names = [event.type for event in stream]
        message = stream.get_final_message()
    assert message.content[0].text == "Hello, world!" and message.stop_reason == "end_turn" and message.model == MODEL
    raw = [n for n in names if n in ("message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop")]
    assert raw == ["message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"]
    assert names.count("text") == 4
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert "reasoning" not in last_body(fake)


def test_stream_tool_use(client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    fake.script({"tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "call_w1"},
        {"name": "get_weather", "arguments": {"city": "Tokyo"}, "call_id": "call_w2"},
    ]})
    with client.messages.stream(model=MODEL, max_tokens=1024, tools=[WEATHER_TOOL],
                                messages=[{"role": "user", "content": "Paris and Tokyo?"}]) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "tool_use"
    assert [(b.type, b.id, b.name, b.input) for b in message.content] == [
        ("tool_use", "call_w1", "get_weather", {"city": "Paris"}), ("tool_use", "call_w2", "get_weather", {"city": "Tokyo"})]
    body = last_body(fake)
    assert body["tools"] == [{"type": "function", "name": "get_weather", "strict": False, "description": "Current weather for a city",
                              "parameters": WEATHER_TOOL["input_schema"]}]
    assert body["parallel_tool_calls"] is True


def test_stream_thinking(client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    fake.script({"reasoning": "Weighing the question carefully.", "text": "42"})
    with client.messages.stream(model=MODEL, max_tokens=16000, thinking=THINKING,
                                messages=[{"role": "user", "content": "Meaning of life?"}]) as stream:
        kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in stream]
        message = stream.get_final_message()
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Weighing the question carefully."
    assert thinking.signature.startswith("cxr1.rs_")
    assert ("content_block_delta", "signature_delta") in kinds and ("content_block_delta", "thinking_delta") in kinds
    assert text.text == "42"
    body = last_body(fake)
    assert body["reasoning"] == {"effort": "high", "summary": "auto"} and body["include"] == ["reasoning.encrypted_content"]


def test_two_turn_tool_round_trip_replays_reasoning(client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    fake.script({"reasoning": "Need the weather tool.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "call_p"}]},
                {"text": "It is 18C and sunny in Paris."})
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris? " + "Some context. " * 200}]
    first = client.messages.create(model=MODEL, max_tokens=16000, thinking=THINKING, tools=[WEATHER_TOOL], messages=messages)
    thinking, call = first.content
    assert first.stop_reason == "tool_use" and call.type == "tool_use" and call.id == "call_p" and call.input == {"city": "Paris"}
    assert thinking.type == "thinking" and thinking.signature.startswith("cxr1.")

    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]}]
    second = client.messages.create(model=MODEL, max_tokens=16000, thinking=THINKING, tools=[WEATHER_TOOL], messages=messages)
    assert second.content[-1].text == "It is 18C and sunny in Paris."
    items = last_body(fake)["input"]
    assert [i.get("type") for i in items] == ["message", "reasoning", "function_call", "function_call_output"]
    assert items[1]["encrypted_content"].startswith("gAAAAA") and items[1]["summary"][0]["text"] == "Need the weather tool."
    assert items[2]["call_id"] == items[3]["call_id"] == "call_p" and items[3]["output"] == "18C and sunny"
    assert second.usage.cache_read_input_tokens > 0  # same conversation key → the fake's prompt cache hit


def test_foreign_reasoning_is_dropped_after_failover(proxy: ProxyProcess, client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    proxy.add_account(mint_access_token(account_id="acc-2", plan="plus", email="two@example.com"), label="two")
    fake.script({"reasoning": "Plan.", "text": "first answer"}, {"text": "second answer"})
    first = client.messages.create(model=MODEL, max_tokens=16000, thinking=THINKING, messages=[{"role": "user", "content": "one"}])
    assert upstream(fake)[-1]["account"] == "acc-1"
    fake.fault("acc-1", usage_limit_429(resets_in=600))
    history = [{"role": "user", "content": "one"},
               {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": "two"}]
    second = client.messages.create(model=MODEL, max_tokens=16000, thinking=THINKING, messages=history)
    assert second.content[-1].text == "second answer"
    tries = [(r["account"], any(i.get("type") == "reasoning" for i in r["body"]["input"])) for r in upstream(fake)[1:]]
    assert tries == [("acc-1", True), ("acc-2", True), ("acc-2", False)]  # 429, invalid_encrypted_content, success


def test_images_base64_and_url(client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    client.messages.create(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What are these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]}])
    assert last_body(fake)["input"][0]["content"] == [
        {"type": "input_text", "text": "What are these?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
        {"type": "input_image", "image_url": "https://example.com/cat.png"},
    ]


def test_incomplete_is_max_tokens(client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    fake.script(incomplete(), incomplete())
    message = client.messages.create(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "long story"}])
    assert message.stop_reason == "max_tokens" and message.content[0].text == "This answer was cut"
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "long story"}]) as stream:
        assert stream.get_final_message().stop_reason == "max_tokens"


def test_count_tokens_needs_no_upstream(proxy: ProxyProcess, client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    proxy.remove_all_accounts()
    counted = client.messages.count_tokens(model=MODEL, system="You are helpful.", tools=[WEATHER_TOOL],
                                           messages=[{"role": "user", "content": "How is the weather in Paris today?"}])
    assert 20 < counted.input_tokens < 200
    assert upstream(fake) == []
    denied = raw_post(proxy, {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}, "/v1/messages/count_tokens", key="wrong")
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"


# --- Claude Code's request shape ------------------------------------------------------------------------


def claude_code_request(cch: str, session: str) -> dict[str, Any]:
    tools = [{"name": f"Tool{i}", "description": f"Tool number {i}. " + "Detailed usage notes. " * 40,
              "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                               "properties": {"path": {"type": "string", "description": "A path"}, "limit": {"type": "number"}},
                               "required": ["path"], "additionalProperties": False}} for i in range(19)]
    tools.append({"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {
        "file_path": {"type": "string"}, "pages": {"type": "string", "description": "PDF page range."}}, "required": ["file_path"]}})
    return {
        "model": MODEL,
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": f"x-anthropic-billing-header: cc_version=2.1.332.{cch}; cc_entrypoint=cli;"},
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "# Instructions\n" + "Follow the repository conventions. " * 2000, "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nToday's date is 2026-11-30.\n</system-reminder>"},
            {"type": "text", "text": "List the files", "cache_control": {"type": "ephemeral"}},
        ]}],
        "tools": tools,
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "metadata": {"user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": session})},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    }


def test_claude_code_shaped_request_round_trips(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    fake.script({"reasoning": "Listing.", "tool_calls": [{"name": "Read", "arguments": {"file_path": "/a.md", "pages": ""}, "call_id": "call_r"}]},
                {"text": "Done."})
    headers = {"x-api-key": proxy.key, "anthropic-version": "2023-06-01", "x-claude-code-session-id": "sess-cc-1",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
    bodies = [claude_code_request("c8e", "sess-cc-1"), claude_code_request("77f", "sess-cc-1")]
    answers = []
    for body in bodies:
        with httpx.stream("POST", proxy.origin + "/v1/messages?beta=true", json=body, headers=headers, timeout=30) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            answers.append(sse_events(response))
    events = answers[0]
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
    tool_start = next(d for n, d in events if n == "content_block_start" and d["content_block"]["type"] == "tool_use")
    assert tool_start["content_block"]["id"] == "call_r"
    arguments = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
    assert json.loads(arguments) == {"file_path": "/a.md"}  # Read's empty `pages` is dropped
    assert next(d for n, d in events if n == "message_delta")["delta"]["stop_reason"] == "tool_use"

    first, second = (r["body"] for r in upstream(fake))
    for body in (first, second):
        assert_backend_safe(body)
        assert "context_management" not in body and "metadata" not in body
    assert first["instructions"] == second["instructions"]  # the rotating billing header is gone
    assert first["instructions"].startswith("You are Claude Code") and "x-anthropic-billing-header" not in first["instructions"]
    assert first["prompt_cache_key"] == second["prompt_cache_key"]
    assert len(first["tools"]) == 20 and all(t["type"] == "function" for t in first["tools"])
    assert "Omit this field entirely" in first["tools"][-1]["parameters"]["properties"]["pages"]["description"]
    assert first["reasoning"] == {"effort": "xhigh", "summary": "auto"}


# --- keep-alive ---------------------------------------------------------------------------------------------


def test_ping_while_the_model_is_silent(start_proxy: Any, fake: FakeCodexThread) -> None:
    proxy = start_proxy(stream={"commit_after_seconds": 0.2, "keepalive_seconds": 0.2})
    proxy.add_account(mint_access_token(account_id="acc-1", plan="plus", email="one@example.com"))
    fake.script({"ttft_ms": 1200, "text": "late answer"})
    body = {"model": MODEL, "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", proxy.origin + "/v1/messages", json=body, headers={"x-api-key": proxy.key}, timeout=30) as response:
        events = sse_events(response)
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names.count("message_start") == 1
    assert "ping" in names[: names.index("content_block_start")]
    assert names[-1] == "message_stop"
    assert "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta") == "late answer"


def test_model_alias_override_in_local_yaml(start_proxy: Any, fake: FakeCodexThread) -> None:
    proxy = start_proxy(model={"aliases": {"claude-sonnet-4-6": "gpt-5.5", "claude-haiku-4-5": "gpt-5.4-mini"}})
    proxy.add_account(mint_access_token(account_id="acc-1", plan="plus", email="one@example.com"))
    client = anthropic.Anthropic(base_url=proxy.origin, api_key=proxy.key, max_retries=0, timeout=30)
    assert client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]).model == MODEL
    assert last_body(fake)["model"] == "gpt-5.5"
    client.messages.create(model="claude-haiku-4-5-20251001", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert last_body(fake)["model"] == "gpt-5.3-codex"  # no exact alias: the family default still applies
    client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert last_body(fake)["model"] == "gpt-5.4-mini"


# --- errors -------------------------------------------------------------------------------------------------


def test_bad_key_is_401_and_both_key_forms_work(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    bad = anthropic.Anthropic(base_url=proxy.origin, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as raised:
        bad.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 401
    assert raised.value.body == {"type": "error", "error": {"type": "authentication_error", "message": "Invalid proxy API key"}}
    bearer = anthropic.Anthropic(base_url=proxy.origin, auth_token=proxy.key, max_retries=0)
    assert bearer.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]).content
    assert len(upstream(fake)) == 1


@pytest.mark.parametrize(("body", "needle"), [
    (b"{not json", "Malformed JSON request body"),
    (b'{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"x"}]}', "max_tokens"),
    (b'{"model":"claude-sonnet-4-6","max_tokens":10,"messages":[]}', "messages"),
    (b'{"model":"claude-sonnet-4-6","max_tokens":10,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"bogus"}}', "tool_choice"),
    (b'[1,2]', "JSON object"),
])
def test_bad_requests_are_400(proxy: ProxyProcess, fake: FakeCodexThread, body: bytes, needle: str) -> None:
    response = raw_post(proxy, body)
    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error" and needle in payload["error"]["message"]
    assert upstream(fake) == []


def test_usage_limit_with_one_account_is_429(client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    fake.fault("acc-1", usage_limit_429(resets_in=120))
    with pytest.raises(anthropic.RateLimitError) as raised:
        client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 429 and raised.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert 100 <= int(raised.value.response.headers["retry-after"]) <= 130
    with pytest.raises(anthropic.RateLimitError):  # the account is cooling down: the pool says so without a call
        with client.messages.stream(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]) as stream:
            stream.get_final_message()
    assert len(upstream(fake)) == 1


def test_empty_completions_are_retried_then_502(proxy: ProxyProcess, client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    proxy.add_account(mint_access_token(account_id="acc-2", plan="plus", email="two@example.com"), label="two")
    fake.script(empty_completion(), {"text": "second account answers"})
    message = client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert message.content[0].text == "second account answers"
    assert [r["account"] for r in upstream(fake)] == ["acc-1", "acc-2"]
    fake.script(empty_completion(), empty_completion())
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "y"}])
    assert raised.value.status_code == 502 and raised.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_no_usable_account_is_529_overloaded(client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    fake.fault("acc-1", ban_403())
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 529
    assert raised.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_mid_stream_failure_is_an_error_event(client: anthropic.Anthropic, fake: FakeCodexThread) -> None:
    fake.script({"text": ["partial ", "answer"], "fail": {"code": "server_error", "message": "boom"}, "fail_after": 4})
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        with client.messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "x"}]) as stream:
            for text in stream.text_stream:
                received.append(text)
    assert "".join(received).startswith("partial")
    assert raised.value.body["error"]["type"] == "api_error" and raised.value.body["error"]["message"].endswith("boom")  # type: ignore[index]
