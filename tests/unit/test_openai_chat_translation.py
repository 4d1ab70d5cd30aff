"""Unit tests of the Chat Completions translator (pure functions, no I/O)."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest

from core.codex.catalog import ModelCatalog
from core.codex.errors import UpstreamError
from core.protocols import openai_chat
from core.protocols.base import BadRequest, ClientRequest, CollectedTurn, NotFound
from tests.unit.codex_events import TOOL_STREAM, run_events, text_stream


def parse(body: Any, catalog: ModelCatalog, cfg: Any) -> Any:
    request = ClientRequest("POST", "/v1/chat/completions", {}, {}, orjson.dumps(body))
    return openai_chat.parse_request(request, catalog, cfg)


def sse_frames(raw: bytes) -> list[Any]:
    frames = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
    return [f if f == "[DONE]" else json.loads(f) for f in frames]


def test_spec_example_request(catalog: ModelCatalog, cfg: Any) -> None:
    prepared = parse({
        "model": "codex-high", "stream": True, "user": "conv-42", "temperature": 0.2, "max_tokens": 100,
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": "result"},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
    }, catalog, cfg)
    body = prepared.turn.body
    assert body["model"] == "gpt-5.4" and body["instructions"] == "Be terse."
    assert body["reasoning"] == {"effort": "high", "summary": "auto"} and body["include"] == ["reasoning.encrypted_content"]
    assert body["tools"] == [{"type": "function", "name": "lookup", "strict": False, "parameters": {"type": "object", "properties": {}}}]
    kinds = [i.get("type") for i in body["input"]]
    assert kinds == ["message", "function_call", "function_call_output"]
    assert body["input"][0]["content"][1] == {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}
    assert body["input"][1] == {"type": "function_call", "call_id": "call_9", "name": "lookup", "arguments": "{\"q\":\"x\"}"}
    assert "temperature" not in body and "max_tokens" not in body
    assert prepared.turn.conversation_key == "conv-42" and prepared.turn.stream is True
    assert prepared.context.model == "gpt-5.4-high"


def test_default_instructions_and_stable_key(catalog: ModelCatalog, cfg: Any) -> None:
    a = parse({"model": "gpt-5.4", "messages": [{"role": "user", "content": "Hello"}]}, catalog, cfg)
    b = parse({"model": "gpt-5.4", "messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"},
                                                 {"role": "user", "content": "more"}]}, catalog, cfg)
    assert a.turn.body["instructions"] == "You are a helpful assistant."
    assert a.turn.conversation_key == b.turn.conversation_key  # same conversation → same account and cache


@pytest.mark.parametrize("body", [
    {"model": "gpt-5.4"},
    {"model": "gpt-5.4", "messages": []},
    {"model": "gpt-5.4", "messages": [{"role": "robot", "content": "x"}]},
    {"model": "gpt-5.4", "messages": [{"role": "user", "content": {"a": 1}}]},
    {"model": "gpt-5.4", "messages": [{"role": "user", "content": [{"text": "no type"}]}]},
    {"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"},
    {"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}], "tools": "nope"},
    {"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "bogus"}},
])
def test_invalid_bodies(body: Any, catalog: ModelCatalog, cfg: Any) -> None:
    with pytest.raises(BadRequest):
        parse(body, catalog, cfg)


USER = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"messages": USER, "tools": {}}, "tools", "'tools' must be an array"),
    ({"messages": USER, "tools": 0}, "tools", "'tools' must be an array"),
    ({"messages": USER, "tools": False}, "tools", "'tools' must be an array"),
    ({"messages": USER, "functions": {"name": "f"}}, "functions", "'functions' must be an array"),
    ({"messages": "x", "input": "x"}, "messages", "'messages' must be a non-empty array"),  # not read as a Responses body
    ({"input": {"role": "user"}}, "input", "'input' must be a string or an array"),
    ({"messages": [{"role": "assistant", "content": "x", "tool_calls": 5}]}, "messages", "tool_calls must be an array"),
    ({"messages": [{"role": "assistant", "content": "x", "tool_calls": {"id": "c"}}]}, "messages", "tool_calls must be an array"),
])
def test_wrongly_typed_arrays_are_400s(body: dict[str, Any], param: str, message: str, catalog: ModelCatalog, cfg: Any) -> None:
    with pytest.raises(BadRequest, match=message) as raised:
        parse({"model": "gpt-5.4", **body}, catalog, cfg)
    reply = openai_chat.render_error(raised.value)
    assert reply.status == 400 and orjson.loads(reply.body)["error"]["param"] == param


def test_unknown_model_family(catalog: ModelCatalog, cfg: Any) -> None:
    with pytest.raises(NotFound):
        parse({"model": "llama3", "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
    served = parse({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
    assert served.turn.body["model"] == "gpt-5.4"


def test_response_format_json_schema(catalog: ModelCatalog, cfg: Any) -> None:
    prepared = parse({"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "out", "strict": True, "schema": {
            "type": "object", "properties": {"inner": {"type": "object", "properties": {"a": {"type": "string"}}}}}}}}, catalog, cfg)
    fmt = prepared.turn.body["text"]["format"]
    assert fmt["name"] == "out" and fmt["strict"] is True
    assert fmt["schema"]["additionalProperties"] is False
    assert fmt["schema"]["properties"]["inner"]["additionalProperties"] is False


def test_stream_text_and_tool_call(catalog: ModelCatalog, cfg: Any) -> None:
    prepared = parse({"model": "gpt-5.4", "reasoning_effort": "low", "stream": True, "stream_options": {"include_usage": True},
                      "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
    translator = openai_chat.StreamTranslator(prepared.context)
    frames = sse_frames(b"".join(translator.feed(e) for e in run_events(TOOL_STREAM)))
    assert frames[0]["choices"][0]["delta"]["role"] == "assistant"
    assert frames[1]["choices"][0]["delta"] == {"reasoning_content": "Thinking..."}
    start = frames[2]["choices"][0]["delta"]["tool_calls"][0]
    assert start == {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    args = "".join(f["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for f in frames[3:5])
    assert args == "{\"location\":\"NYC\"}"
    assert frames[5]["choices"][0]["finish_reason"] == "tool_calls"
    assert frames[6]["choices"] == [] and frames[6]["usage"] == {
        "prompt_tokens": 20, "completion_tokens": 15, "total_tokens": 35,
        "prompt_tokens_details": {"cached_tokens": 5}, "completion_tokens_details": {"reasoning_tokens": 7}}
    assert frames[7] == "[DONE]"


def test_reasoning_dropped_without_effort(catalog: ModelCatalog, cfg: Any) -> None:
    prepared = parse({"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
    raw = b"".join(openai_chat.StreamTranslator(prepared.context).feed(e) for e in run_events(TOOL_STREAM))
    assert b"reasoning_content" not in raw


def test_incomplete_maps_to_length(catalog: ModelCatalog, cfg: Any) -> None:
    prepared = parse({"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
    pairs = text_stream("cut")[:-1] + [("response.incomplete", {"type": "response.incomplete", "response": {
        "id": "r", "incomplete_details": {"reason": "max_output_tokens"}, "usage": {"input_tokens": 1, "output_tokens": 1}}})]
    frames = sse_frames(b"".join(openai_chat.StreamTranslator(prepared.context).feed(e) for e in run_events(pairs)))
    assert [f["choices"][0]["finish_reason"] for f in frames if f != "[DONE]" and f["choices"][0]["finish_reason"]] == ["length"]


def test_non_stream_render(catalog: ModelCatalog, cfg: Any) -> None:
    prepared = parse({"model": "gpt-5.4", "reasoning_effort": "low", "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
    collected = CollectedTurn()
    parser = None
    from core.codex.events import CodexStreamParser

    parser = CodexStreamParser()
    for event in run_events(TOOL_STREAM, parser):
        collected.add(event.deltas)
    collected.finalize(parser)
    payload = orjson.loads(openai_chat.render_response(collected, prepared.context).body)
    message = payload["choices"][0]["message"]
    assert message["content"] is None and message["reasoning_content"] == "Thinking..."
    assert message["tool_calls"] == [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"NYC\"}"}}]
    assert payload["choices"][0]["finish_reason"] == "tool_calls"
    assert payload["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}


def test_errors_in_openai_envelope() -> None:
    reply = openai_chat.render_error(UpstreamError(429, "rate_limit_exceeded", "slow down", retry_after=30.4))
    assert reply.status == 429 and reply.headers["retry-after"] == "30"
    assert orjson.loads(reply.body)["error"]["type"] == "rate_limit_error"
    # A used-up plan keeps the backend's own shape, which Codex CLI reads (type, plan_type, resets_at).
    reply = openai_chat.render_error(UpstreamError(429, "usage_limit_reached", "limit", retry_after=30.4, plan_type="pro"))
    error = orjson.loads(reply.body)["error"]
    assert reply.status == 429 and reply.headers["retry-after"] == "30"
    assert error["type"] == error["code"] == "usage_limit_reached" and error["plan_type"] == "pro"
    assert error["resets_in_seconds"] == 30 and abs(error["resets_at"] - (time.time() + 30)) < 3
    reply = openai_chat.render_error(BadRequest("Malformed JSON request body", code="invalid_json"))
    assert orjson.loads(reply.body) == {"error": {"message": "Malformed JSON request body", "type": "invalid_request_error", "param": None, "code": "invalid_json"}}
