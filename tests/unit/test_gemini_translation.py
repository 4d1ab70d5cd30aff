"""Unit tests of the Gemini translator (pure functions, no I/O)."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest

from core.codex.catalog import ModelCatalog
from core.codex.errors import UpstreamError
from core.codex.events import Finished, Usage
from core.protocols import gemini
from core.protocols.base import BadRequest, ClientRequest, Unauthorized
from core.protocols.gemini.response import finish_reason, usage_metadata
from core.protocols.gemini.schema import openapi_to_json_schema
from tests.unit.codex_events import TOOL_STREAM, USAGE, collect, run_events, text_stream

PATH = "/v1beta/models/gemini-2.5-pro:generateContent"


def parse(body: Any, catalog: ModelCatalog, cfg: Any, path: str = PATH, query: dict[str, str] | None = None,
          headers: dict[str, str] | None = None) -> Any:
    request = ClientRequest("POST", path, query or {}, headers or {}, orjson.dumps(body))
    return gemini.parse_request(request, catalog, cfg)


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def model(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def sse_payloads(raw: bytes) -> list[Any]:
    return [json.loads(block[len("data: "):]) for block in raw.decode().split("\r\n\r\n") if block.startswith("data: ")]


# --- requests -----------------------------------------------------------------------------------


def test_conversation_mapping(catalog: ModelCatalog, cfg: Any) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 8).decode()
    prepared = parse({
        "systemInstruction": {"role": "user", "parts": [{"text": "Be terse."}, {"text": "Use metric."}]},
        "contents": [
            user({"text": "What is this?"}, {"inlineData": {"mimeType": "image/png", "data": png}}),
            model({"text": "thinking...", "thought": True}, {"text": "A square."}),
            user({"text": "And this?"}, {"inline_data": {"mime_type": "text/plain", "data": base64.b64encode(b"notes").decode()}}),
        ],
        "generationConfig": {"temperature": 0.1, "maxOutputTokens": 10, "topK": 3, "stopSequences": ["x"]},
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
    }, catalog, cfg)
    body = prepared.turn.body
    assert body["instructions"] == "Be terse.\nUse metric."
    assert body["model"] == "gpt-5.4"  # unknown names are served by the default model
    assert body["input"] == [
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{png}"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A square."}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "And this?"}, {"type": "input_text", "text": "notes"}]},
    ]
    assert set(body) == {"model", "instructions", "input", "tools"}  # sampling knobs are never forwarded
    assert prepared.turn.stream is False and prepared.context.model == "gemini-2.5-pro"


def test_default_instructions_pdf_and_urls(catalog: ModelCatalog, cfg: Any) -> None:
    body = parse({"contents": [user(
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/a.pdf"}},
    )]}, catalog, cfg).turn.body
    assert body["instructions"] == "You are a helpful assistant."
    assert body["input"][0]["content"] == [
        {"type": "input_file", "filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
        {"type": "input_image", "image_url": "https://example.com/cat.jpg"},
        {"type": "input_file", "file_url": "https://example.com/a.pdf"},
    ]


@pytest.mark.parametrize("body, message", [
    ({"contents": []}, "contents must be a non-empty array"),
    ({}, "contents must be a non-empty array"),
    ({"contents": [{"role": "user", "parts": []}]}, "parts must be a non-empty array"),
    ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "role must be 'user' or 'model'"),
    ({"contents": [user({"fileData": {"fileUri": "gs://bucket/x.pdf"}})]}, "send the file as inlineData"),
    ({"contents": [user({"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}})]}, "audio/wav input is not supported"),
    ({"contents": [user({"text": "x"})], "tools": [{"functionDeclarations": [{"description": "no name"}]}]}, "needs a name"),
    ([1, 2], "must be a JSON object"),
    ({"contents": "x"}, "contents must be a non-empty array"),
    ({"contents": [user({"text": "x"})], "tools": "googleSearch"}, "tools must be an array"),
    ({"contents": [user({"text": "x"})], "tools": [{"functionDeclarations": {"name": "f"}}]}, "functionDeclarations must be an array"),
    ({"contents": [user({"text": "x"})], "toolConfig": "AUTO"}, "toolConfig must be an object"),
    ({"contents": [user({"text": "x"})], "toolConfig": {"functionCallingConfig": "ANY"}}, "functionCallingConfig must be an object"),
    ({"contents": [user({"text": "x"})], "tool_config": {"function_calling_config": ["ANY"]}}, "functionCallingConfig must be an object"),
    ({"contents": [user({"text": "x"})], "generationConfig": {"thinkingConfig": 1024}}, "thinkingConfig must be an object"),
])
def test_invalid_requests(body: Any, message: str, catalog: ModelCatalog, cfg: Any) -> None:
    with pytest.raises(BadRequest, match=message) as raised:
        parse(body, catalog, cfg)
    reply = gemini.render_error(raised.value)
    assert reply.status == 400 and orjson.loads(reply.body)["error"]["status"] == "INVALID_ARGUMENT"


def test_unknown_action_is_rejected(catalog: ModelCatalog, cfg: Any) -> None:
    with pytest.raises(BadRequest, match="Invalid action"):
        parse({"contents": [user({"text": "x"})]}, catalog, cfg, path="/v1beta/models/x:predict")


def test_stream_modes(catalog: ModelCatalog, cfg: Any) -> None:
    body = {"contents": [user({"text": "x"})]}
    sse = parse(body, catalog, cfg, "/v1beta/models/m:streamGenerateContent", {"alt": "sse"})
    array = parse(body, catalog, cfg, "/v1beta/models/m:streamGenerateContent")
    generate_sse = parse(body, catalog, cfg, "/v1/models/m:generateContent", {"alt": "sse"})
    assert (sse.turn.stream, sse.context.sse) == (True, True)
    assert (array.turn.stream, array.context.sse) == (True, False)
    assert (generate_sse.turn.stream, generate_sse.context.sse) == (True, True)
    assert gemini.StreamTranslator(array.context).content_type.startswith("application/json")


def test_function_call_ids_round_trip(catalog: ModelCatalog, cfg: Any) -> None:
    items = parse({"contents": [
        user({"text": "Weather in Paris and Rome?"}),
        model({"functionCall": {"id": "call_a", "name": "get_weather", "args": {"city": "Paris"}}},
              {"functionCall": {"id": "call_b", "name": "get_weather", "args": {"city": "Rome"}}}),
        user({"functionResponse": {"id": "call_b", "name": "get_weather", "response": {"output": "25C"}}},
             {"functionResponse": {"id": "call_a", "name": "get_weather", "response": {"temp": 18}}}),
    ]}, catalog, cfg).turn.body["input"]
    assert items[1:] == [
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_b", "output": "25C"},
        {"type": "function_call_output", "call_id": "call_a", "output": '{"temp":18}'},
    ]


def test_calls_without_ids_get_stable_ids_paired_by_name(catalog: ModelCatalog, cfg: Any) -> None:
    history = [
        user({"text": "Look up both"}),
        model({"text": "Let me check."}, {"functionCall": {"name": "lookup", "args": {"q": "a"}}},
              {"function_call": {"name": "fetch", "args": {"url": "u"}}}),
        {"role": "function", "parts": [{"functionResponse": {"name": "fetch", "response": {"output": "page"}}},
                                       {"functionResponse": {"name": "lookup", "response": {"output": "hit"}}}]},
        model({"text": "Done."}),
        user({"functionResponse": {"name": "stray", "response": {"output": "late"}}}),
    ]
    first = parse({"contents": history}, catalog, cfg).turn.body["input"]
    again = parse({"contents": history + [user({"text": "more"})]}, catalog, cfg).turn.body["input"]
    assert again[: len(first)] == first  # the same history gives the same ids: the prompt cache holds
    calls = {i["name"]: i["call_id"] for i in first if i.get("type") == "function_call"}
    outputs = {i["output"]: i["call_id"] for i in first if i.get("type") == "function_call_output"}
    assert calls == {"lookup": "call_synth_1", "fetch": "call_synth_2"}
    assert outputs == {"page": calls["fetch"], "hit": calls["lookup"]}
    assert first[1] == {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}]}
    # A response to no known call is kept as context instead of an orphan output the backend rejects.
    assert first[-1] == {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "[stray result] late"}]}


def test_unanswered_call_gets_a_stub_output(catalog: ModelCatalog, cfg: Any) -> None:
    items = parse({"contents": [user({"text": "go"}), model({"functionCall": {"name": "f", "args": {}}}), user({"text": "never mind"})]},
                  catalog, cfg).turn.body["input"]
    assert [i.get("type") for i in items] == ["message", "function_call", "function_call_output", "message"]


def test_function_response_media_follow_as_a_user_turn(catalog: ModelCatalog, cfg: Any) -> None:
    items = parse({"contents": [
        user({"text": "screenshot"}), model({"functionCall": {"id": "c1", "name": "shot", "args": {}}}),
        user({"functionResponse": {"id": "c1", "name": "shot", "response": {"output": "taken"},
                                   "parts": [{"inlineData": {"mimeType": "image/jpeg", "data": "/9j/AAAA"}}]}}),
    ]}, catalog, cfg).turn.body["input"]
    assert items[2] == {"type": "function_call_output", "call_id": "c1", "output": "taken"}
    assert items[3] == {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/AAAA"}]}


def test_tools_and_tool_config(catalog: ModelCatalog, cfg: Any) -> None:
    tools = [
        {"functionDeclarations": [
            {"name": "get_weather", "description": "Weather", "parameters": {
                "type": "OBJECT", "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER", "nullable": True}},
                "required": ["city"], "propertyOrdering": ["city", "days"]}},
            {"name": "search", "parameters_json_schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
            {"name": "noop"},
        ]},
        {"googleSearch": {}},
        {"codeExecution": {}},
    ]
    body = parse({"contents": [user({"text": "x"})], "tools": tools}, catalog, cfg).turn.body
    assert body["tools"] == [
        {"type": "function", "name": "get_weather", "strict": False, "description": "Weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}}, "required": ["city"]}},
        {"type": "function", "name": "search", "strict": False, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
        {"type": "function", "name": "noop", "strict": False, "parameters": {"type": "object", "properties": {}}},
        {"type": "web_search"},
    ]
    assert "tool_choice" not in body

    def choice(config: dict[str, Any]) -> tuple[Any, list[str]]:
        out = parse({"contents": [user({"text": "x"})], "tools": tools, "toolConfig": {"functionCallingConfig": config}}, catalog, cfg).turn.body
        return out["tool_choice"], [t.get("name", t["type"]) for t in out["tools"]]

    all_tools = ["get_weather", "search", "noop", "web_search"]
    assert choice({"mode": "AUTO"}) == ("auto", all_tools)
    assert choice({"mode": "NONE"}) == ("none", all_tools)
    assert choice({"mode": "ANY"}) == ("required", all_tools)
    assert choice({"mode": "ANY", "allowedFunctionNames": ["search"]}) == ({"type": "function", "name": "search"}, ["search", "web_search"])
    assert choice({"mode": "ANY", "allowed_function_names": ["search", "noop", "ghost"]}) == ("required", ["search", "noop", "web_search"])


def test_thinking_config_maps_to_effort(catalog: ModelCatalog, cfg: Any) -> None:
    def effort(thinking: dict[str, Any], url_model: str = "gemini-2.5-pro") -> Any:
        body = parse({"contents": [user({"text": "x"})], "generationConfig": {"thinkingConfig": thinking}}, catalog, cfg,
                     path=f"/v1beta/models/{url_model}:generateContent").turn.body
        return (body.get("reasoning") or {}).get("effort")

    assert [effort({"thinkingBudget": b}) for b in (1999, 2000, 7999, 8000, 19999, 20000)] == ["low", "medium", "medium", "high", "high", "xhigh"]
    assert effort({"thinkingBudget": -1}) is None  # dynamic: the backend's default
    assert effort({"thinking_budget": 0}) == "low"  # "no thinking" → the lowest level gpt-5.4 offers
    assert effort({"thinkingLevel": "HIGH"}) == "high"
    assert effort({"thinkingLevel": "MINIMAL"}) == "low"
    assert effort({}, "gpt-5.4-xhigh") == "xhigh"  # a model-name suffix applies when the config says nothing
    assert effort({"thinkingBudget": 1000}, "gpt-5.4-xhigh") == "low"
    assert effort({"includeThoughts": True}) == "medium"  # thoughts need a summary: the model's default effort


def test_structured_output(catalog: ModelCatalog, cfg: Any) -> None:
    def fmt(generation: dict[str, Any]) -> Any:
        return parse({"contents": [user({"text": "x"})], "generationConfig": generation}, catalog, cfg).turn.body.get("text", {}).get("format")

    assert fmt({"responseMimeType": "application/json"}) == {"type": "json_object"}
    assert fmt({"responseMimeType": "text/plain", "responseSchema": {"type": "STRING"}}) is None
    openapi = fmt({"response_mime_type": "application/json", "response_schema": {
        "type": "OBJECT", "title": "P", "property_ordering": ["name", "tags"],
        "properties": {"name": {"type": "STRING", "format": "enum", "enum": ["a", "b"]},
                       "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "min_items": 1}},
        "required": ["name"]}})
    assert openapi == {"type": "json_schema", "name": "gemini_schema", "strict": False, "schema": {
        "type": "object", "title": "P", "additionalProperties": False,
        "properties": {"name": {"type": "string", "enum": ["a", "b"]}, "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        "required": ["name"]}}
    strict = fmt({"responseMimeType": "application/json", "responseJsonSchema": {
        "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}})
    assert strict == {"type": "json_schema", "name": "gemini_schema", "strict": True, "schema": {
        "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False}}


def test_uppercase_types_in_json_schemas_are_lowercased(catalog: ModelCatalog, cfg: Any) -> None:
    """Gemini CLI's model router sends OpenAPI type names inside responseJsonSchema."""
    schema = {"type": "OBJECT", "properties": {"score": {"type": "INTEGER"}, "why": {"type": ["STRING", "NULL"]},
                                               "type": {"type": "STRING", "enum": ["OBJECT"]}},
              "required": ["score", "why", "type"]}
    body = parse({"contents": [user({"text": "x"})],
                  "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema},
                  "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "OBJECT", "properties": {"n": {"type": "NUMBER"}}}}]}]},
                 catalog, cfg).turn.body
    fmt = body["text"]["format"]
    assert fmt["strict"] is True and fmt["schema"] == {
        "type": "object", "required": ["score", "why", "type"], "additionalProperties": False,
        "properties": {"score": {"type": "integer"}, "why": {"type": ["string", "null"]}, "type": {"type": "string", "enum": ["OBJECT"]}}}
    assert body["tools"][0]["parameters"] == {"type": "object", "properties": {"n": {"type": "number"}}}


def test_openapi_schema_refs_and_nullable_enums() -> None:
    converted = openapi_to_json_schema({
        "type": "OBJECT", "defs": {"Pet": {"type": "OBJECT", "properties": {"kind": {"type": "STRING", "enum": ["cat"], "nullable": True}}}},
        "properties": {"pet": {"ref": "#/defs/Pet"}, "any": {"anyOf": [{"type": "STRING"}], "nullable": True}},
        "example": {"pet": None},
    })
    assert converted == {
        "type": "object",
        "$defs": {"Pet": {"type": "object", "properties": {"kind": {"type": ["string", "null"], "enum": ["cat", None]}}}},
        "properties": {"pet": {"$ref": "#/$defs/Pet"}, "any": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    }


def test_conversation_key_header(catalog: ModelCatalog, cfg: Any) -> None:
    body = {"contents": [user({"text": "x"})]}
    assert parse(body, catalog, cfg, headers={"x-session-id": "sess-9"}).turn.conversation_key == "sess-9"
    derived = parse(body, catalog, cfg).turn.conversation_key
    assert derived and derived == parse(body, catalog, cfg).turn.conversation_key


# --- responses ----------------------------------------------------------------------------------


def test_non_streaming_response(catalog: ModelCatalog, cfg: Any) -> None:
    context = gemini.GeminiContext(model="gemini-2.5-pro", include_thoughts=True)
    reply = gemini.render_response(collect(TOOL_STREAM), context)
    payload = orjson.loads(reply.body)
    candidate = payload["candidates"][0]
    assert candidate["content"] == {"role": "model", "parts": [
        {"text": "Thinking...", "thought": True},
        {"functionCall": {"id": "call_1", "name": "get_weather", "args": {"location": "NYC"}}},
    ]}
    assert candidate["finishReason"] == "STOP"  # Gemini reports STOP for function calls too
    assert payload["usageMetadata"] == {"promptTokenCount": 20, "candidatesTokenCount": 8, "totalTokenCount": 35,
                                        "cachedContentTokenCount": 5, "thoughtsTokenCount": 7}
    assert payload["modelVersion"] == "gemini-2.5-pro" and payload["responseId"] == context.response_id


def test_thoughts_hidden_unless_asked_and_max_tokens() -> None:
    pairs = text_stream("Hel", "lo")
    pairs.insert(1, ("response.reasoning_summary_text.delta", {"type": "response.reasoning_summary_text.delta", "delta": "hmm"}))
    pairs[-1] = ("response.incomplete", {"type": "response.incomplete", "response": {
        "id": "r", "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "usage": USAGE}})
    payload = orjson.loads(gemini.render_response(collect(pairs), gemini.GeminiContext(model="m")).body)
    assert payload["candidates"][0]["content"]["parts"] == [{"text": "Hello"}]
    assert payload["candidates"][0]["finishReason"] == "MAX_TOKENS"


def test_finish_reasons() -> None:
    assert finish_reason(Finished("completed", None, None)) == "STOP"
    assert finish_reason(Finished("incomplete", "content_filter", None)) == "SAFETY"
    assert finish_reason(Finished("incomplete", "other", None)) == "OTHER"
    assert usage_metadata(Usage(10, 4)) == {"promptTokenCount": 10, "candidatesTokenCount": 4, "totalTokenCount": 14}


def test_malformed_call_arguments() -> None:
    pairs = [
        ("response.output_item.added", {"type": "response.output_item.added", "item": {"type": "function_call", "id": "fc1", "call_id": "c1", "name": "f"}}),
        ("response.function_call_arguments.done", {"type": "response.function_call_arguments.done", "item_id": "fc1", "arguments": "{oops"}),
        ("response.completed", {"type": "response.completed", "response": {"id": "r", "usage": USAGE}}),
    ]
    payload = orjson.loads(gemini.render_response(collect(pairs), gemini.GeminiContext(model="m")).body)
    assert payload["candidates"][0]["finishReason"] == "MALFORMED_FUNCTION_CALL"
    translator = gemini.StreamTranslator(gemini.GeminiContext(model="m"))
    frames = sse_payloads(b"".join(translator.feed(e) for e in run_events(pairs)))
    assert [f["candidates"][0].get("finishReason") for f in frames] == ["MALFORMED_FUNCTION_CALL"]


def test_sse_stream() -> None:
    translator = gemini.StreamTranslator(gemini.GeminiContext(model="gemini-2.5-flash"))
    raw = b"".join(translator.feed(e) for e in run_events(TOOL_STREAM))
    frames = sse_payloads(raw)
    assert [f["candidates"][0]["content"]["parts"] for f in frames] == [
        [{"functionCall": {"id": "call_1", "name": "get_weather", "args": {"location": "NYC"}}}],
        [{"text": ""}],
    ]
    assert frames[-1]["candidates"][0]["finishReason"] == "STOP"
    assert frames[-1]["usageMetadata"]["thoughtsTokenCount"] == 7
    assert "usageMetadata" not in frames[0] and all(f["modelVersion"] == "gemini-2.5-flash" for f in frames)
    assert translator.keepalive().strip() == b""  # never an SSE comment: google-genai cannot parse one


def test_json_array_stream_is_one_valid_array_written_incrementally() -> None:
    translator = gemini.StreamTranslator(gemini.GeminiContext(model="m", sse=False, include_thoughts=True))
    pieces = [translator.keepalive()]
    pairs = text_stream("a", "b")
    pairs.insert(1, ("response.reasoning_summary_text.delta", {"type": "response.reasoning_summary_text.delta", "delta": "why"}))
    for event in run_events(pairs):
        pieces.append(translator.feed(event))
        pieces.append(translator.keepalive())
    first = next(p for p in pieces if p.strip())
    assert first.startswith(b"[{") and not first.endswith(b"]")  # the first element goes out at once
    array = json.loads(b"".join(pieces))
    assert [c["candidates"][0]["content"]["parts"][0] for c in array] == [{"text": "why", "thought": True}, {"text": "a"}, {"text": "b"}, {"text": ""}]
    assert array[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("sse", [True, False])
def test_stream_failure_frames(sse: bool) -> None:
    translator = gemini.StreamTranslator(gemini.GeminiContext(model="m", sse=sse))
    pairs = text_stream("partial")[:-1] + [("response.failed", {"type": "response.failed", "response": {
        "id": "r", "status": "failed", "error": {"code": "server_error", "message": "boom"}}})]
    raw = b"".join(translator.feed(e) for e in run_events(pairs))
    frames = sse_payloads(raw) if sse else json.loads(raw)
    assert frames[0]["candidates"][0]["content"]["parts"] == [{"text": "partial"}]
    assert frames[-1] == {"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}
    assert translator.fail(UpstreamError(500, "x", "again")) == b""  # only one ending


def test_failure_before_any_chunk_is_still_a_json_array() -> None:
    translator = gemini.StreamTranslator(gemini.GeminiContext(model="m", sse=False))
    raw = translator.keepalive() + translator.fail(UpstreamError(429, "rate_limit_exceeded", "slow down", retry_after=12.4))
    assert json.loads(raw) == [{"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}]


def test_error_envelopes() -> None:
    reply = gemini.render_error(Unauthorized("Invalid proxy API key"))
    assert reply.status == 401 and orjson.loads(reply.body) == {"error": {"code": 401, "message": "Invalid proxy API key", "status": "UNAUTHENTICATED"}}
    forbidden = orjson.loads(gemini.render_error(UpstreamError(403, "forbidden", "Model not allowed")).body)["error"]
    assert (forbidden["message"], forbidden["status"]) == ("Model not allowed", "PERMISSION_DENIED")  # not swapped
    assert gemini.render_error(UpstreamError(503, "x", "y")).status == 503
    assert orjson.loads(gemini.render_error(UpstreamError(504, "x", "y")).body)["error"]["status"] == "DEADLINE_EXCEEDED"
    assert orjson.loads(gemini.render_error(UpstreamError(402, "x", "y")).body)["error"]["status"] == "FAILED_PRECONDITION"
    assert gemini.render_error(UpstreamError(200, "x", "odd")).status == 502
    limited = gemini.render_error(UpstreamError(429, "rate_limit_exceeded", "wait", retry_after=30))
    assert limited.headers["retry-after"] == "30"


def test_count_tokens_estimate(catalog: ModelCatalog, cfg: Any) -> None:
    request = ClientRequest("POST", "/v1beta/models/m:countTokens", {}, {}, orjson.dumps({"generateContentRequest": {
        "contents": [user({"text": "x" * 400}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}})]}}))
    assert orjson.loads(gemini.count_tokens(request, catalog, cfg).body) == {"totalTokens": 100 + 258}
    with pytest.raises(BadRequest) as raised:  # refused like parse_request: the route renders it
        gemini.count_tokens(ClientRequest("POST", "/v1beta/models/m:countTokens", {}, {}, b"{"), catalog, cfg)
    bad = gemini.render_error(raised.value)
    assert bad.status == 400 and orjson.loads(bad.body)["error"]["status"] == "INVALID_ARGUMENT"


def test_model_entries(catalog: ModelCatalog) -> None:
    info = catalog.get("gpt-5.4")
    assert info is not None
    entry = gemini.model_entry(info)
    assert entry["name"] == "models/gpt-5.4" and entry["inputTokenLimit"] == 272000 and entry["outputTokenLimit"] == 128000
    assert "generateContent" in entry["supportedGenerationMethods"] and entry["thinking"] is True
    alias = gemini.resolved_entry(catalog, "gemini-2.5-pro")
    assert alias["name"] == "models/gemini-2.5-pro" and alias["baseModelId"] == "gpt-5.4"
