"""Codex Responses passthrough (``/v1/responses``, ``/v1/responses/compact``) with the ``openai`` SDK."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from codex_fake import FakeCodexThread
from core.codex.request import ALLOWED_FIELDS
from tests.support.proxy import ProxyProcess


def last_body(fake: FakeCodexThread, path: str = "/codex/responses") -> dict[str, Any]:
    return fake.requests(path)[-1]["body"]


def test_create_non_streaming(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"text": "Hi from Codex"})
    response = openai_client.responses.create(
        model="gpt-5.4", instructions="Be brief.", input="Say hi", temperature=0.5, max_output_tokens=100,
        truncation="auto", user="someone", metadata={"a": "b"},
    )
    assert response.output_text == "Hi from Codex"
    assert response.status == "completed"
    assert response.output and response.output[0].type == "message"
    assert response.usage is not None and response.usage.input_tokens > 0
    body = last_body(fake)
    assert set(body) <= ALLOWED_FIELDS
    assert body["instructions"] == "Be brief."
    assert body["input"][0]["role"] == "user"


def test_stream_events_are_relayed(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"reasoning": "Plan the answer.", "text": ["Hello", ", ", "stream"]})
    with openai_client.responses.stream(
        model="gpt-5.4", input=[{"role": "user", "content": "hi"}], reasoning={"effort": "low", "summary": "auto"}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "Hello, stream"
    assert final.output_text == "Hello, stream"
    assert any(item.type == "reasoning" for item in final.output)
    assert last_body(fake)["include"] == ["reasoning.encrypted_content"]


def test_function_call_round_trip(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    fake.script({"tool_calls": [{"name": "lookup", "arguments": {"q": "codex"}, "call_id": "call_r1"}]})
    first = openai_client.responses.create(model="gpt-5.4", input="find codex", tools=tools)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].call_id == "call_r1" and calls[0].arguments == '{"q":"codex"}'
    follow_up: Any = [{"role": "user", "content": "find codex"}, calls[0].model_dump(exclude_none=True),
                      {"type": "function_call_output", "call_id": "call_r1", "output": "found"}]
    second = openai_client.responses.create(model="gpt-5.4", input=follow_up, tools=tools)
    assert second.output_text
    assert [i.get("type") for i in last_body(fake)["input"]][-2:] == ["function_call", "function_call_output"]


def test_unanswered_tool_call_gets_a_stub_output(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    openai_client.responses.create(model="gpt-5.4", input=[
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "call_lost", "name": "lookup", "arguments": "{}"},
        {"role": "user", "content": "never mind"},
    ])
    outputs = [i for i in last_body(fake)["input"] if i.get("type") == "function_call_output"]
    assert outputs and outputs[0]["call_id"] == "call_lost"


def test_stream_failure_becomes_response_failed(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"text": ["a", "b"], "disconnect_after": 6})  # created, in_progress, item, part, a, b
    events = list(openai_client.responses.create(model="gpt-5.4", input="x", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None and events[-1].response.error.code == "stream_disconnected"


def test_compact(openai_client: openai.OpenAI, proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    response = httpx.post(proxy.base_url + "/responses/compact", headers={"Authorization": f"Bearer {proxy.key}"},
                          json={"model": "gpt-5.4", "input": [{"role": "user", "content": "long history"}], "instructions": "x",
                                "stream": True, "store": True, "temperature": 1}, timeout=30)
    assert response.status_code == 200, response.text
    assert any(item["type"] == "compaction" for item in response.json()["output"])
    body = last_body(fake, "/codex/responses/compact")
    assert "stream" not in body and "store" not in body and "temperature" not in body


def test_unknown_previous_response_id_is_refused_clearly(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.responses.create(model="gpt-5.4", input="x", previous_response_id="resp_123")
    assert raised.value.code == "previous_response_not_found" and "resp_123" in raised.value.message


def test_previous_response_id_over_sse_sends_the_stored_history(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    first = openai_client.responses.create(model="gpt-5.4", input="my name is Ada")
    second = openai_client.responses.create(model="gpt-5.4", input="and yours?", previous_response_id=first.id)
    assert second.output_text == "You said: and yours?"
    body = last_body(fake, "/codex/responses")
    assert "previous_response_id" not in body  # the HTTP endpoint refuses it: the history goes in full
    assert [item.get("role") for item in body["input"]] == ["user", "assistant", "user"]


def test_streaming_pre_stream_error_is_sse_response_failed(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    from codex_fake.faults import usage_limit_429

    fake.fault("acc-1", usage_limit_429(resets_in=60))
    client = openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        list(client.responses.create(model="gpt-5.4", input="x", stream=True))
