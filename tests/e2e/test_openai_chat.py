"""OpenAI Chat Completions through the real proxy, driven by the official ``openai`` SDK."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import openai
import pytest
import sqlite_utils
from pydantic import BaseModel

from codex_fake import FakeCodexThread
from core.codex.request import ALLOWED_FIELDS
from tests.support.proxy import ProxyProcess

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def upstream_bodies(fake: FakeCodexThread) -> list[dict[str, Any]]:
    return [r["body"] for r in fake.requests("/codex/responses")]


def last_upstream(fake: FakeCodexThread) -> dict[str, Any]:
    requests = fake.requests("/codex/responses")
    assert requests, "the fake backend received nothing"
    return requests[-1]


def test_non_streaming_chat(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    completion = openai_client.chat.completions.create(
        model="gpt-5.4",
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hello there"}],
        temperature=0.2,
        max_tokens=50,
        top_p=0.9,
        user="conv-42",
    )
    assert completion.choices[0].message.content == "You said: Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-5.4"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens

    sent = last_upstream(fake)
    body = sent["body"]
    assert set(body) <= ALLOWED_FIELDS, "a field the backend rejects was sent"
    assert body["stream"] is True and body["store"] is False
    assert body["instructions"] == "Be terse."
    assert body["input"][-1]["role"] == "user"
    assert body["prompt_cache_key"].startswith("cp_") and "conv-42" not in body["prompt_cache_key"]
    headers = sent["headers"]
    assert headers["authorization"].startswith("Bearer ey")
    assert headers["chatgpt-account-id"] == "acc-1"
    assert headers["originator"] == "codex_cli_rs"
    assert headers["user-agent"].startswith("codex_cli_rs/")
    assert headers["session-id"] == body["prompt_cache_key"] == headers["x-client-request-id"] == headers["thread-id"]
    assert headers["content-encoding"] == "zstd" and headers["version"] == "0.171.0"
    assert headers["accept"] == "text/event-stream"
    # The CLI speaks HTTP/1.1 to a plain-http backend: no h2c upgrade offer (HTTP/2 comes from TLS's ALPN).
    assert not {"upgrade", "http2-settings"} & set(headers) and "upgrade" not in headers.get("connection", "").lower()


def test_streaming_chat_with_usage(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"text": ["Hel", "lo", ", wor", "ld!"]})
    stream = openai_client.chat.completions.create(
        model="gpt-5.4", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world!"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
    assert len({c.id for c in chunks}) == 1


def test_streaming_without_include_usage_sends_no_usage(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    chunks = list(openai_client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "x"}], stream=True))
    assert all(c.usage is None for c in chunks)


def test_tool_round_trip(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "call_w1"}]})
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = openai_client.chat.completions.create(model="gpt-5.4", messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id == "call_w1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    tool_sent = last_upstream(fake)["body"]["tools"][0]
    assert tool_sent["type"] == "function" and tool_sent["name"] == "get_weather" and tool_sent["strict"] is False

    messages += [choice.message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
    fake.script({"text": "It is 18C and sunny."})
    second = openai_client.chat.completions.create(model="gpt-5.4", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "It is 18C and sunny."
    items = last_upstream(fake)["body"]["input"]
    calls = [i for i in items if i.get("type") == "function_call"]
    outputs = [i for i in items if i.get("type") == "function_call_output"]
    assert calls[0]["call_id"] == outputs[0]["call_id"] == "call_w1"
    assert outputs[0]["output"] == "18C and sunny"


def test_parallel_tool_calls_stream(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "call_a"},
        {"name": "get_weather", "arguments": {"city": "Tokyo"}, "call_id": "call_b"},
    ]})
    stream = openai_client.chat.completions.create(
        model="gpt-5.4", messages=[{"role": "user", "content": "Paris and Tokyo?"}], tools=[WEATHER_TOOL], stream=True,
        parallel_tool_calls=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] = delta.id or entry["id"]
            if delta.function is not None:
                entry["name"] = delta.function.name or entry["name"]
                entry["arguments"] += delta.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert {calls[0]["id"], calls[1]["id"]} == {"call_a", "call_b"}
    by_id = {c["id"]: json.loads(c["arguments"]) for c in calls.values()}
    assert by_id == {"call_a": {"city": "Paris"}, "call_b": {"city": "Tokyo"}}
    assert last_upstream(fake)["body"]["parallel_tool_calls"] is True


class Weather(BaseModel):
    city: str
    temperature_c: int


def test_parse_with_pydantic_model(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"text": '{"city": "Paris", "temperature_c": 18}'})
    parsed = openai_client.chat.completions.parse(
        model="gpt-5.4", messages=[{"role": "user", "content": "Weather?"}], response_format=Weather
    )
    assert parsed.choices[0].message.parsed == Weather(city="Paris", temperature_c=18)
    fmt = last_upstream(fake)["body"]["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["name"] == "Weather" and fmt["strict"] is True
    assert fmt["schema"]["additionalProperties"] is False


def test_json_object_response_format(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"text": '{"ok": true}'})
    completion = openai_client.chat.completions.create(
        model="gpt-5.4", messages=[{"role": "user", "content": "json please"}], response_format={"type": "json_object"}
    )
    assert json.loads(completion.choices[0].message.content or "") == {"ok": True}
    assert last_upstream(fake)["body"]["text"] == {"format": {"type": "json_object"}}


def test_vision_input(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    pixel = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    openai_client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]}])
    content = last_upstream(fake)["body"]["input"][-1]["content"]
    assert content[0] == {"type": "input_text", "text": "What is this?"}
    assert content[1]["type"] == "input_image" and content[1]["image_url"].startswith("data:image/png;base64,")
    assert content[2]["image_url"] == "https://example.com/cat.png"


def test_reasoning_effort_and_reasoning_content(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"reasoning": "Considering the question.", "text": "42"})
    completion = openai_client.chat.completions.create(
        model="gpt-5.4", messages=[{"role": "user", "content": "meaning of life?"}], reasoning_effort="high"
    )
    message = completion.choices[0].message
    assert message.content == "42"
    assert (message.model_extra or {}).get("reasoning_content") == "Considering the question."
    body = last_upstream(fake)["body"]
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None


def test_model_suffixes(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    completion = openai_client.chat.completions.create(model="gpt-5.4-high-fast", messages=[{"role": "user", "content": "x"}])
    assert completion.model == "gpt-5.4-high-fast"
    body = last_upstream(fake)["body"]
    assert body["model"] == "gpt-5.4" and body["reasoning"]["effort"] == "high" and body["service_tier"] == "priority"


def test_multi_turn_history_is_sent_in_order(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    openai_client.chat.completions.create(model="gpt-5.4", messages=[
        {"role": "developer", "content": "Rules."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
    ])
    body = last_upstream(fake)["body"]
    assert body["instructions"] == "Rules."
    assert [(i["role"], i["content"][0]["text"]) for i in body["input"]] == [("user", "one"), ("assistant", "two"), ("user", "three")]


# --- errors ----------------------------------------------------------------------------------------


def test_wrong_key_is_401_in_openai_envelope(proxy: ProxyProcess) -> None:
    client = openai.OpenAI(base_url=proxy.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 401
    assert raised.value.body["code"] == "invalid_api_key"  # type: ignore[index]
    missing = httpx.post(proxy.base_url + "/chat/completions", json={"model": "gpt-5.4", "messages": []})
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"model":"gpt-5.4","messages":"hi"}', "invalid_request"),
        (b'{"model":"gpt-5.4","messages":[]}', "invalid_request"),
        (b'{"model":"gpt-5.4","messages":[{"role":"wizard","content":"x"}]}', "invalid_request"),
        (b'{"model":42,"messages":[{"role":"user","content":"x"}]}', "invalid_request"),
        (b'{"model":"gpt-5.4","messages":[{"role":"user","content":5}]}', "invalid_request"),
        (b'[1,2]', "invalid_request"),
    ],
)
def test_bad_requests_are_400(proxy: ProxyProcess, fake: FakeCodexThread, body: bytes, code: str) -> None:
    response = httpx.post(proxy.base_url + "/chat/completions", content=body,
                          headers={"Authorization": f"Bearer {proxy.key}", "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["type"] == "invalid_request_error" and error["message"]
    assert fake.requests("/codex/responses") == []


def test_unknown_model_family_is_404(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "x"}])
    assert raised.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_upstream_rejection_reaches_client(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"http_error": {"status": 400, "body": {"detail": "Unsupported parameter: frobnicate"}}})
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "x"}])
    assert "Unsupported parameter: frobnicate" in raised.value.message


def test_usage_limit_with_single_account_is_429_with_retry_after(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    from codex_fake.faults import usage_limit_429

    fake.fault("acc-1", usage_limit_429(resets_in=120))
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 429
    assert 100 <= int(raised.value.response.headers["retry-after"]) <= 130


def test_mid_stream_failure_ends_with_error_chunk(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    fake.script({"text": ["partial ", "answer"], "fail": {"code": "server_error", "message": "boom"}, "fail_after": 4})
    with httpx.stream("POST", proxy.base_url + "/chat/completions", headers={"Authorization": f"Bearer {proxy.key}"},
                      json={"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": "x"}]}, timeout=30) as response:
        assert response.status_code == 200
        frames = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert frames[-1] != "[DONE]"
    last = json.loads(frames[-1])
    assert last["error"]["message"].endswith("boom") and last["error"]["type"]
    assert "partial " in "".join(json.loads(f)["choices"][0]["delta"].get("content") or "" for f in frames[:-1])


def test_unknown_path_is_json_404(proxy: ProxyProcess) -> None:
    response = httpx.get(proxy.origin + "/v2/whatever")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_health_and_models_need_no_key(proxy: ProxyProcess) -> None:
    health = httpx.get(proxy.origin + "/health").json()
    assert health["status"] == "ok" and health["accounts"]["active"] == 1
    models = openai.OpenAI(base_url=proxy.base_url, api_key="none").models.list()
    ids = [m.id for m in models.data]
    assert "gpt-5.4" in ids and "gpt-5.5" in ids
    info = httpx.get(proxy.base_url + "/models/gpt-5.4/info").json()
    assert info["id"] == "gpt-5.4" and info["supportedReasoningEfforts"]
    assert httpx.get(proxy.base_url + "/models/nope/info").status_code == 404


def test_client_disconnect_aborts_upstream(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    fake.script({"text": [f"w{i} " for i in range(200)], "event_delay_ms": 50})
    before = fake.stats()["aborted_streams"]
    with httpx.stream("POST", proxy.base_url + "/chat/completions", headers={"Authorization": f"Bearer {proxy.key}"},
                      json={"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": "x"}]}, timeout=30) as response:
        lines = response.iter_lines()
        for line in lines:
            if '"content":"w2 ' in line:
                break
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and fake.stats()["aborted_streams"] == before:
        time.sleep(0.05)
    assert fake.stats()["aborted_streams"] == before + 1


def test_request_log_row_in_sqlite(openai_client: openai.OpenAI, proxy: ProxyProcess) -> None:
    openai_client.chat.completions.create(model="gpt-5.4-low", messages=[{"role": "user", "content": "log me"}])
    db = sqlite_utils.Database(proxy.data_dir / "codex-proxy.db")
    deadline = time.monotonic() + 5
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not rows:
        rows = list(db.query("select * from request_log where requested_model = 'gpt-5.4-low'"))
        time.sleep(0.1)
    row = rows[0]
    assert row["status"] == 200 and row["model"] == "gpt-5.4" and row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert row["ttfb_ms"] is not None and row["duration_ms"] >= row["ttfb_ms"]


def test_transient_upstream_500_is_retried_invisibly(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    from codex_fake.faults import server_error_500

    fake.fault("acc-1", server_error_500(), times=1)
    completion = openai_client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "retry me"}])
    assert completion.choices[0].message.content == "You said: retry me"
    assert len(fake.requests("/codex/responses")) == 2
