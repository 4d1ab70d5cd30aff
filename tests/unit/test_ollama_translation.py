"""Unit tests of the Ollama translator and route table (pure, no sockets)."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest

from core.codex.catalog import ModelCatalog
from core.codex.errors import UpstreamError
from core.gateway.ollama_routes import cors_headers
from core.protocols import ollama
from core.protocols.base import BadRequest, ClientRequest, NotFound
from tests.unit.codex_events import TOOL_STREAM, USAGE, collect, run_events, text_stream

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 8).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 8).decode()


def chat(body: Any, catalog: ModelCatalog, cfg: Any) -> Any:
    return ollama.parse_request(ClientRequest("POST", "/api/chat", {}, {}, orjson.dumps(body)), catalog, cfg)


def generate(body: Any, catalog: ModelCatalog, cfg: Any) -> Any:
    return ollama.parse_request(ClientRequest("POST", "/api/generate", {}, {}, orjson.dumps(body)), catalog, cfg)


def lines(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.decode().splitlines()]


# --- requests -----------------------------------------------------------------------------------


def test_chat_mapping(catalog: ModelCatalog, cfg: Any) -> None:
    prepared = chat({
        "model": "gpt-5.4:latest",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "What is this?", "images": [PNG, JPEG]},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "lookup", "arguments": {"q": "x"}}}]},
            {"role": "tool", "tool_name": "lookup", "content": "found"},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "options": {"temperature": 0.1, "num_ctx": 8192, "num_predict": 5},
        "keep_alive": "10m",
    }, catalog, cfg)
    body = prepared.turn.body
    assert body["model"] == "gpt-5.4" and body["instructions"] == "Be terse."
    assert body["input"] == [
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
            {"type": "input_image", "image_url": f"data:image/jpeg;base64,{JPEG}"}]},
        {"type": "function_call", "call_id": "call_synth_1", "name": "lookup", "arguments": '{"q":"x"}'},
        {"type": "function_call_output", "call_id": "call_synth_1", "output": "found"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
    ]
    assert body["tools"] == [{"type": "function", "name": "lookup", "strict": False,
                              "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    assert set(body) == {"model", "instructions", "input", "tools"}  # options are never forwarded
    assert prepared.turn.stream is True  # Ollama streams by default
    assert (prepared.context.model, prepared.context.kind, prepared.context.keep_alive) == ("gpt-5.4:latest", "chat", 600.0)


def test_tool_call_ids_round_trip_when_given(catalog: ModelCatalog, cfg: Any) -> None:
    items = chat({"model": "gpt-5.4", "stream": False, "messages": [
        {"role": "user", "content": "both"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_a", "function": {"index": 0, "name": "f", "arguments": {}}},
            {"id": "call_b", "function": {"index": 1, "name": "f", "arguments": '{"k": 1}'}}]},
        {"role": "tool", "tool_call_id": "call_b", "content": "B"},
        {"role": "tool", "tool_name": "f", "content": "A"},
        {"role": "tool", "tool_name": "f", "content": "stray"},
    ]}, catalog, cfg).turn.body["input"]
    outputs = [(i["call_id"], i["output"]) for i in items if i.get("type") == "function_call_output"]
    assert outputs == [("call_b", "B"), ("call_a", "A")]
    assert items[-1] == {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "[f result] stray"}]}


def test_think_format_and_load(catalog: ModelCatalog, cfg: Any) -> None:
    def think(value: Any, model: str = "gpt-5.4") -> tuple[Any, bool]:
        prepared = chat({"model": model, "messages": [{"role": "user", "content": "x"}], "think": value}, catalog, cfg)
        return (prepared.turn.body.get("reasoning") or {}).get("effort"), prepared.context.want_thinking

    assert think(True) == ("medium", True)
    assert think("high") == ("high", True)
    assert think("minimal") == ("low", True)  # clamped to what gpt-5.4 offers
    assert think(False) == ("low", False)
    assert think(None) == (None, False)
    assert think(None, "gpt-5.4-xhigh") == ("xhigh", False)
    with pytest.raises(BadRequest, match="invalid think"):
        think("lots")

    def fmt(value: Any) -> Any:
        return chat({"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}], "format": value}, catalog, cfg).turn.body.get("text")

    assert fmt("json") == {"format": {"type": "json_object"}}
    assert fmt("") is None
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert fmt(schema) == {"format": {"type": "json_schema", "name": "ollama_schema", "strict": True,
                                      "schema": {**schema, "additionalProperties": False}}}
    assert fmt({"type": "object", "properties": {"a": {"type": "integer"}}})["format"]["strict"] is False
    with pytest.raises(BadRequest, match="invalid format"):
        fmt("yaml")

    loaded = chat({"model": "gpt-5.4", "messages": []}, catalog, cfg)
    assert loaded.turn is None
    reply = orjson.loads(ollama.render_load(loaded.context).body)
    assert reply["done"] is True and reply["done_reason"] == "load" and reply["message"] == {"role": "assistant", "content": ""}


def test_generate_mapping(catalog: ModelCatalog, cfg: Any) -> None:
    prepared = generate({"model": "gpt-5.4", "prompt": "Describe", "system": "You are a poet.", "images": [JPEG], "stream": False}, catalog, cfg)
    body = prepared.turn.body
    assert body["instructions"] == "You are a poet." and prepared.turn.stream is False
    assert body["input"] == [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Describe"}, {"type": "input_image", "image_url": f"data:image/jpeg;base64,{JPEG}"}]}]
    raw = generate({"model": "gpt-5.4", "prompt": "[INST] hi [/INST]", "raw": True}, catalog, cfg).turn.body
    assert raw["instructions"] == "" and raw["input"][0]["content"][0]["text"] == "[INST] hi [/INST]"
    default = generate({"model": "gpt-5.4", "prompt": "x"}, catalog, cfg).turn.body
    assert default["instructions"] == "You are a helpful assistant."
    assert generate({"model": "gpt-5.4"}, catalog, cfg).turn is None  # load
    with pytest.raises(BadRequest, match="does not support insert"):
        generate({"model": "gpt-5.4", "prompt": "def f(", "suffix": "return x"}, catalog, cfg)
    with pytest.raises(BadRequest, match="raw mode does not support"):
        generate({"model": "gpt-5.4", "prompt": "x", "raw": True, "system": "s"}, catalog, cfg)


@pytest.mark.parametrize(("body", "error", "message"), [
    ({"messages": []}, BadRequest, "model is required"),
    ({"model": "llama3", "messages": []}, NotFound, "model 'llama3' not found"),
    ({"model": "gpt-5.4", "messages": "hi"}, BadRequest, "messages must be an array"),
    ({"model": "gpt-5.4", "messages": [{"role": "wizard", "content": "x"}]}, BadRequest, "is not one of"),
    ({"model": "gpt-5.4", "messages": [{"role": "user", "content": "x", "images": [1]}]}, BadRequest, "images must be"),
    ({"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}], "keep_alive": "soon"}, BadRequest, "invalid keep_alive"),
    ({"model": "gpt-5.4", "messages": {"role": "user", "content": "x"}}, BadRequest, "messages must be an array"),
    ({"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}], "tools": {"type": "function"}}, BadRequest, "'tools' must be an array"),
    ({"model": "gpt-5.4", "messages": [{"role": "assistant", "content": "", "tool_calls": 5}]}, BadRequest, "tool_calls must be an array"),
    ({"model": "gpt-5.4", "messages": [{"role": "assistant", "content": "", "tool_calls": {"function": {"name": "f"}}}]},
     BadRequest, "tool_calls must be an array"),
])
def test_invalid_chat_requests(body: Any, error: type[Exception], message: str, catalog: ModelCatalog, cfg: Any) -> None:
    with pytest.raises(error, match=message) as raised:
        chat(body, catalog, cfg)
    reply = ollama.render_error(raised.value)
    assert reply.status == raised.value.status and set(orjson.loads(reply.body)) == {"error"}


def test_parse_request_tells_the_kinds_apart_by_path(catalog: ModelCatalog, cfg: Any) -> None:
    body = orjson.dumps({"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}], "prompt": "y"})
    for path, kind in (("/api/chat", "chat"), ("/api/generate", "generate")):
        assert ollama.parse_request(ClientRequest("POST", path, {}, {}, body), catalog, cfg).context.kind == kind
    with pytest.raises(NotFound):
        ollama.parse_request(ClientRequest("POST", "/api/embed", {}, {}, body), catalog, cfg)


# --- answers ------------------------------------------------------------------------------------


def context(kind: str = "chat", thinking: bool = False) -> ollama.OllamaContext:
    return ollama.OllamaContext("gpt-5.4", "gpt-5.4", kind, thinking)


def test_non_streaming_chat_answer() -> None:
    started = context(thinking=True)
    payload = orjson.loads(ollama.render_response(collect(TOOL_STREAM), started).body)
    assert payload["message"] == {"role": "assistant", "content": "", "thinking": "Thinking...", "tool_calls": [
        {"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"location": "NYC"}}}]}
    assert payload["done"] is True and payload["done_reason"] == "stop"  # Ollama says "stop" after tool calls too
    assert (payload["prompt_eval_count"], payload["eval_count"]) == (20, 15)
    assert payload["total_duration"] >= payload["prompt_eval_duration"] >= 0 and payload["eval_duration"] >= 0
    assert payload["created_at"].endswith("Z") and payload["model"] == "gpt-5.4"


def test_non_streaming_generate_answer_hides_thinking_unless_asked() -> None:
    pairs = text_stream("Hel", "lo")
    pairs.insert(1, ("response.reasoning_summary_text.delta", {"type": "response.reasoning_summary_text.delta", "delta": "hmm"}))
    payload = orjson.loads(ollama.render_response(collect(pairs), context("generate")).body)
    assert payload["response"] == "Hello" and "thinking" not in payload and "message" not in payload
    assert "context" not in payload  # no token ids to give back


def test_stream_lines_and_final_counts() -> None:
    translator = ollama.StreamTranslator(context(thinking=True))
    assert translator.content_type == "application/x-ndjson"
    pairs = text_stream("Hel", "lo")
    pairs.insert(1, ("response.reasoning_summary_text.delta", {"type": "response.reasoning_summary_text.delta", "delta": "hmm"}))
    out = lines(b"".join(translator.feed(e) for e in run_events(pairs)))
    assert [(line["message"].get("thinking"), line["message"]["content"], line["done"]) for line in out] == [
        ("hmm", "", False), (None, "Hel", False), (None, "lo", False), (None, "", True)]
    final = out[-1]
    assert final["done_reason"] == "stop" and final["prompt_eval_count"] == 20 and final["eval_count"] == 15
    assert final["message"] == {"role": "assistant", "content": ""}  # not a repeat of the whole reply


def test_stream_tool_calls_and_length() -> None:
    translator = ollama.StreamTranslator(context())
    out = lines(b"".join(translator.feed(e) for e in run_events(TOOL_STREAM)))
    assert out[0]["message"]["tool_calls"] == [{"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"location": "NYC"}}}]
    assert "thinking" not in out[0]["message"]
    pairs = text_stream("cut")
    pairs[-1] = ("response.incomplete", {"type": "response.incomplete", "response": {
        "id": "r", "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "usage": USAGE}})
    final = lines(b"".join(ollama.StreamTranslator(context("generate")).feed(e) for e in run_events(pairs)))[-1]
    assert final["done_reason"] == "length" and final["response"] == ""


def test_stream_error_line_and_keepalive() -> None:
    translator = ollama.StreamTranslator(context())
    keepalive = json.loads(translator.keepalive())
    assert keepalive["done"] is False and keepalive["message"]["content"] == ""
    pairs = text_stream("partial")[:-1] + [("error", {"type": "error", "code": "server_error", "message": "boom"})]
    out = lines(b"".join(translator.feed(e) for e in run_events(pairs)))
    assert out[-1] == {"error": "boom"}
    assert translator.fail(UpstreamError(500, "x", "again")) == b""


def test_errors_and_model_info(catalog: ModelCatalog) -> None:
    reply = ollama.render_error(NotFound("model 'x' not found"))
    assert reply.status == 404 and orjson.loads(reply.body) == {"error": "model 'x' not found"}
    limited = ollama.render_error(UpstreamError(429, "rate_limit_exceeded", "slow down", retry_after=9))
    assert limited.status == 429 and limited.headers["retry-after"] == "9"
    tags = ollama.tags_payload(catalog, "2026-01-01T00:00:00Z")["models"]
    assert "gpt-5.4" in [m["name"] for m in tags] and len(tags[0]["digest"]) == 64
    model = catalog.resolve("gpt-5.4")
    show = ollama.show_payload(catalog, "gpt-5.4", model, "t", disable_vision=False)
    assert show["capabilities"] == ["completion", "tools", "vision", "thinking"]
    assert show["model_info"]["gpt.context_length"] == 272000 and show["model_info"]["general.architecture"] == "gpt"
    assert "vision" not in ollama.show_payload(catalog, "gpt-5.4", model, "t", disable_vision=True)["capabilities"]
    text_only = ollama.show_payload(catalog, "gpt-oss-20b", catalog.resolve("gpt-oss-20b"), "t", disable_vision=False)
    assert "vision" not in text_only["capabilities"]


@pytest.mark.parametrize(("origin", "allowed"), [
    (None, True), ("http://localhost:3000", True), ("https://127.0.0.1", True), ("http://[::1]:8080", True),
    ("http://app.localhost", True), ("https://evil.example", False), ("null", False), ("http://192.168.1.5", False),
    ("file://", False),
])
def test_cors_only_for_loopback_origins(origin: str | None, allowed: bool) -> None:
    headers = cors_headers(origin)
    assert (headers is not None) == allowed
    if origin and allowed:
        assert headers == {"access-control-allow-origin": origin, "vary": "Origin"}
