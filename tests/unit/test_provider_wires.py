"""The provider wires: a Responses-shaped turn rendered in each provider's request format, and each
provider's stream (in its documented event shapes) turned back into Codex Responses events that the
shared parser reads like the backend's."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from core.codex.catalog import ResolvedModel
from core.codex.events import CodexStreamParser, Finished, ReasoningDone, TextDelta, ToolCallDone
from core.providers.events import ResponsesEmitter, TokenUsage
from core.providers.model import Provider
from core.providers.wires import CallSpec, SignatureMemo, anthropic, chat, gemini, responses
from core.turn.model import Turn, UpstreamEvent

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
HISTORY: list[dict[str, Any]] = [
    {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"},
                                                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "look it up"}], "encrypted_content": "ant1.SIG"},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
]  # fmt: skip


def spec(kind: str, wire: str, body: dict[str, Any] | None = None, sampling: dict[str, Any] | None = None,
         omit: frozenset[str] = frozenset(), memo: SignatureMemo | None = None) -> CallSpec:  # fmt: skip
    provider = Provider("p", kind, "P", "https://api.example/v1", wire, headers={"X-Title": "proxy"})
    turn_body = {"model": "m", "instructions": "You are a helpful assistant.", "input": HISTORY,
                 "tools": [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": WEATHER},
                           {"type": "web_search"}], **(body or {})}  # fmt: skip
    turn = Turn("openai", turn_body, ResolvedModel("m", "m"), True, sampling=sampling or {})
    return CallSpec(provider, "KEY", "upstream-model", turn, 4096, omit, memo or SignatureMemo())


def body_of(request: Any) -> dict[str, Any]:
    return orjson.loads(request.body)


def run(parser: Any, frames: list[bytes]) -> tuple[list[UpstreamEvent], CodexStreamParser]:
    """Feed ``frames`` one chunk each, then close; the events also go through the shared parser."""
    codex = CodexStreamParser()
    events = [e for frame in frames for e in parser.feed(frame)] + parser.close()
    for event in events:
        event.deltas = codex.feed(event.name, event.data)
    return events, codex


def deltas(events: list[UpstreamEvent]) -> list[Any]:
    return [d for e in events for d in e.deltas]


# --- the emitter ------------------------------------------------------------------------------------------


def test_emitter_items_come_one_after_another_with_sequence_numbers() -> None:
    emitter = ResponsesEmitter("m", custom_tools=frozenset({"apply_patch"}))
    events = emitter.reasoning("hmm") + emitter.text("Hi") + emitter.call_start("0", "call_a", "f") + emitter.call_args("0", '{"a":')
    events += emitter.call_args("0", "1}") + emitter.call_start("1", "call_b", "apply_patch") + emitter.call_args("1", '{"input":"*** x"}')
    events += emitter.finish(TokenUsage(10, 5, 2, 1))
    names = [e.name for e in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert [e.data["sequence_number"] for e in events] == list(range(len(events)))
    assert names.count("response.output_item.added") == names.count("response.output_item.done") == 4
    done = [e.data["item"] for e in events if e.name == "response.output_item.done"]
    assert [i["type"] for i in done] == ["reasoning", "message", "function_call", "custom_tool_call"]
    assert done[2]["arguments"] == '{"a":1}' and done[3]["input"] == "*** x"
    final = events[-1].data["response"]
    assert final["status"] == "completed" and final["output"] == done
    assert final["usage"] == {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0}, "output_tokens": 5,
                              "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 15}  # fmt: skip
    assert all(orjson.loads(e.raw) == e.data for e in events)


def test_emitter_failure_carries_the_status_the_pipeline_acts_on() -> None:
    emitter = ResponsesEmitter("m")
    codex = CodexStreamParser()
    for event in emitter.fail(429, "rate_limit_error", "slow down"):
        codex.feed(event.name, event.data)
    assert codex.terminal is not None and codex.terminal.error.status == 429 and codex.terminal.error.message == "slow down"  # type: ignore[union-attr]
    assert emitter.finish(None) == [] and emitter.text("late") == []  # nothing follows the end


# --- chat completions ----------------------------------------------------------------------------------------


def test_chat_request_renders_history_tools_and_options() -> None:
    request = chat.build_request(spec("openai", "chat", {"tool_choice": {"type": "function", "name": "get_weather"},
                                                          "reasoning": {"effort": "low"}, "parallel_tool_calls": False,
                                                          "text": {"format": {"type": "json_schema", "name": "w", "schema": WEATHER, "strict": True}}},
                                      {"max_output_tokens": 99, "temperature": 0.1, "stop": ["END"]}))  # fmt: skip
    assert request.url == "https://api.example/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer KEY" and request.headers["X-Title"] == "proxy"
    body = body_of(request)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [{"id": "call_1", "type": "function",
                                                                       "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]  # fmt: skip
    assert body["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}} and body["parallel_tool_calls"] is False
    assert body["reasoning_effort"] == "low" and body["max_completion_tokens"] == 99 and body["stop"] == ["END"]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER, "strict": True}}
    assert body["stream_options"] == {"include_usage": True}
    router = body_of(chat.build_request(spec("openrouter", "chat", {"reasoning": {"effort": "high"}}, {"max_output_tokens": 5, "temperature": 1},
                                             omit=frozenset({"sampling"}))))  # fmt: skip
    assert router["reasoning"] == {"effort": "high"} and router["max_tokens"] == 5 and "temperature" not in router


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": choices, **extra}) + b"\n\n"


def test_chat_stream_becomes_responses_events() -> None:
    frames = [b": OPENROUTER PROCESSING\n\n", chunk({"role": "assistant", "content": ""}), chunk({"reasoning": "Let me"}),
              chunk({"content": "Hel"}), chunk({"content": "lo"}),
              chunk({"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
              chunk({}, "tool_calls"),
              chunk(None, usage={"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4},
                                 "completion_tokens_details": {"reasoning_tokens": 1}}),
              b"data: [DONE]\n\n"]  # fmt: skip
    events, codex = run(chat.StreamParser(spec("openrouter", "chat")), frames)
    found = deltas(events)
    assert "".join(d.text for d in found if isinstance(d, TextDelta)) == "Hello"
    call = next(d for d in found if isinstance(d, ToolCallDone))
    assert (call.call_id, call.name, call.arguments) == ("call_x", "f", '{"a":1}')
    assert isinstance(codex.terminal, Finished) and codex.terminal.status == "completed"
    assert codex.usage.input_tokens == 7 and codex.usage.cached_tokens == 4 and codex.usage.reasoning_tokens == 1  # type: ignore[union-attr]


def test_chat_stream_length_is_incomplete_and_errors_fail() -> None:
    _, codex = run(chat.StreamParser(spec("openai", "chat")), [chunk({"content": "cut"}), chunk({}, "length"), b"data: [DONE]\n\n"])
    assert isinstance(codex.terminal, Finished) and codex.terminal.reason == "max_output_tokens"
    _, failed = run(chat.StreamParser(spec("openrouter", "chat")), [chunk({"content": "a"}), b'data: {"error":{"code":502,"message":"upstream died"}}\n\n'])
    assert failed.terminal is not None and failed.terminal.error.status == 502 and "upstream died" in failed.terminal.error.message  # type: ignore[union-attr]
    _, broken = run(chat.StreamParser(spec("openai", "chat")), [chunk({"content": "a"})])
    assert broken.terminal is None  # no finish_reason: the pipeline reports a dropped stream


# --- responses --------------------------------------------------------------------------------------------


def test_responses_request_keeps_the_public_fields_only() -> None:
    body = body_of(responses.build_request(spec("openai", "responses", {"client_metadata": {"a": "b"}, "reasoning": {"effort": "high"},
                                                                          "include": ["reasoning.encrypted_content"],
                                                                          "tools": [{"type": "image_generation"}, {"type": "web_search"}]},
                                                {"max_output_tokens": 10}, omit=frozenset({"reasoning"}))))  # fmt: skip
    assert body["model"] == "upstream-model" and body["stream"] is True and body["store"] is False
    assert "client_metadata" not in body and "reasoning" not in body and "include" not in body
    assert body["tools"] == [{"type": "web_search"}] and body["max_output_tokens"] == 10


# --- anthropic --------------------------------------------------------------------------------------------


def test_anthropic_request_merges_roles_and_replays_its_own_thinking() -> None:
    request = anthropic.build_request(spec("anthropic", "anthropic", {"reasoning": {"effort": "high"}, "parallel_tool_calls": False},
                                           {"max_output_tokens": 8000, "temperature": 0.5, "thinking_budget": 9000}))  # fmt: skip
    assert request.url == "https://api.example/v1/v1/messages" and request.headers["x-api-key"] == "KEY"
    assert request.headers["anthropic-version"] == anthropic.VERSION
    body = body_of(request)
    assert body["system"] == "Be brief." and body["max_tokens"] == 8000
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8000 - 1024} and "temperature" not in body
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assistant = body["messages"][1]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": "look it up", "signature": "SIG"}
    assert assistant[1:] == [{"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]
    assert body["messages"][0]["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}


def frame(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n"


def test_anthropic_stream_becomes_responses_events() -> None:
    frames = [frame("message_start", {"message": {"id": "msg_1", "usage": {"input_tokens": 5, "cache_read_input_tokens": 10, "output_tokens": 1}}}),
              frame("ping", {}),
              frame("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
              frame("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
              frame("content_block_delta", {"index": 0, "delta": {"type": "signature_delta", "signature": "S1"}}),
              frame("content_block_stop", {"index": 0}),
              frame("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}),
              frame("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
              frame("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "2}"}}),
              frame("content_block_stop", {"index": 1}),
              frame("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
              frame("message_stop", {})]  # fmt: skip
    events, codex = run(anthropic.StreamParser(spec("anthropic", "anthropic")), frames)
    found = deltas(events)
    thought = next(d for d in found if isinstance(d, ReasoningDone))
    assert thought.summary == "hmm" and thought.encrypted_content == "ant1.S1"
    call = next(d for d in found if isinstance(d, ToolCallDone))
    assert (call.call_id, call.arguments) == ("toolu_1", '{"a":2}')
    assert codex.response_id == "msg_1" and codex.usage.input_tokens == 15 and codex.usage.cached_tokens == 10  # type: ignore[union-attr]
    assert codex.usage.output_tokens == 12  # type: ignore[union-attr]


@pytest.mark.parametrize(("kind", "status"), [("overloaded_error", 503), ("rate_limit_error", 429), ("invalid_request_error", 400)])
def test_anthropic_error_events(kind: str, status: int) -> None:
    _, codex = run(anthropic.StreamParser(spec("anthropic", "anthropic")), [frame("error", {"error": {"type": kind, "message": "no"}})])
    assert codex.terminal is not None and codex.terminal.error.status == status  # type: ignore[union-attr]


# --- gemini ------------------------------------------------------------------------------------------------


def test_gemini_request_and_signatures_of_function_calls() -> None:
    memo = SignatureMemo()
    memo.put("call_1", "c2lnbmF0dXJl")
    request = gemini.build_request(spec("gemini", "gemini", {"tool_choice": "required", "reasoning": {"effort": "low"}},
                                        {"max_output_tokens": 50, "stop": ["X"]}, memo=memo))  # fmt: skip
    assert request.url == "https://api.example/v1/v1beta/models/upstream-model:streamGenerateContent?alt=sse"
    assert request.headers["x-goog-api-key"] == "KEY"
    body = body_of(request)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}
    assert body["contents"][1]["parts"][1] == {"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}},
                                                "thoughtSignature": "c2lnbmF0dXJl"}  # fmt: skip
    assert body["contents"][2]["parts"] == [{"functionResponse": {"id": "call_1", "name": "get_weather", "response": {"output": "sunny"}}}]
    assert body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == WEATHER
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body["generationConfig"] == {"maxOutputTokens": 50, "stopSequences": ["X"], "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True}}


def test_gemini_stream_becomes_responses_events() -> None:
    memo = SignatureMemo()
    parts = [[{"text": "Think", "thought": True}], [{"text": "Hi"}], [{"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "QUJD"}]]
    frames = [b"data: " + orjson.dumps({"candidates": [{"content": {"role": "model", "parts": p}, "index": 0}], "responseId": "r1"}) + b"\r\n\r\n"
              for p in parts]  # fmt: skip
    frames.append(b"data: " + orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS"}],
                                            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6, "thoughtsTokenCount": 2}}) + b"\r\n\r\n")  # fmt: skip
    events, codex = run(gemini.StreamParser(spec("gemini", "gemini", memo=memo)), frames)
    call = next(d for d in deltas(events) if isinstance(d, ToolCallDone))
    assert call.name == "f" and orjson.loads(call.arguments) == {"a": 1} and memo.get(call.call_id) == "QUJD"
    assert isinstance(codex.terminal, Finished) and codex.terminal.reason == "max_output_tokens"
    assert codex.usage.output_tokens == 8 and codex.usage.reasoning_tokens == 2  # type: ignore[union-attr]
    _, failed = run(gemini.StreamParser(spec("gemini", "gemini")), [b'data: {"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}\r\n\r\n'])
    assert failed.terminal is not None and failed.terminal.error.status == 429  # type: ignore[union-attr]
