"""Unit tests of the Anthropic Messages translator (pure functions, no I/O): ten golden
Anthropic → Codex cases (the contract fixtures), then edge cases."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from codex_fake.scenarios import split_words
from core.codex.catalog import ModelCatalog
from core.codex.errors import UpstreamError
from core.codex.events import CodexStreamParser, ReasoningDone
from core.protocols import anthropic
from core.protocols.anthropic.errors import error_payload
from core.protocols.anthropic.response import usage_payload
from core.protocols.anthropic.thinking import reasoning_signature
from core.protocols.anthropic.token_count import IMAGE_TOKENS
from core.protocols.base import BadRequest, ClientRequest, CollectedTurn, Unauthorized
from core.turn.pipeline import NoAccountError
from tests.unit.codex_events import TOOL_STREAM, run_events, text_stream

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def request(body: Any, headers: dict[str, str] | None = None, path: str = "/v1/messages") -> ClientRequest:
    return ClientRequest("POST", path, {}, headers or {}, body if isinstance(body, bytes) else orjson.dumps(body))


def parse(body: dict[str, Any], catalog: ModelCatalog, cfg: Any, headers: dict[str, str] | None = None) -> Any:
    return anthropic.parse_request(request({"model": "claude-sonnet-4-5", "max_tokens": 1024, **body}, headers), catalog, cfg)


def codex(body: dict[str, Any], catalog: ModelCatalog, cfg: Any) -> dict[str, Any]:
    return parse(body, catalog, cfg).turn.body


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def frames(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs; each frame's ``type`` must repeat its event name."""
    out = []
    for chunk in raw.decode().split("\n\n"):
        if not chunk:
            continue
        event_line, data_line = chunk.split("\n")
        name, data = event_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        out.append((name, data))
    return out


def stream(pairs: list[tuple[str, dict[str, Any]]], context: anthropic.AnthropicContext) -> list[tuple[str, dict[str, Any]]]:
    translator = anthropic.StreamTranslator(context)
    return frames(b"".join(translator.feed(e) for e in run_events(pairs)))


def sdk_message(events: list[tuple[str, dict[str, Any]]]) -> Any:
    """Replay the stream through the official SDK's accumulator: it rejects bad order or indexes."""
    snapshot, buffers = None, {}
    for name, data in events:
        if name not in ("ping", "error"):
            snapshot = accumulate_event(event=data, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    return snapshot


def context(want_reasoning: bool = True, thinking_text: bool = True) -> anthropic.AnthropicContext:
    return anthropic.AnthropicContext("claude-sonnet-4-5", want_reasoning, thinking_text)


def reasoning_stream(summary: str | None, *, encrypted: str | None = "gAAAAABsealed", then_text: str = "Answer") -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = [("response.created", {"type": "response.created", "response": {"id": "resp_r"}})]
    parts = []
    if summary:
        pairs.append(("response.reasoning_summary_part.added", {"item_id": "rs_1", "summary_index": 0}))
        pairs += [("response.reasoning_summary_text.delta", {"item_id": "rs_1", "delta": w}) for w in split_words(summary)]
        parts = [{"type": "summary_text", "text": summary}]
    item: dict[str, Any] = {"id": "rs_1", "type": "reasoning", "summary": parts}
    if encrypted:
        item["encrypted_content"] = encrypted
    pairs.append(("response.output_item.done", {"item": item}))
    pairs += text_stream(then_text)[1:]
    return pairs


# --- contract fixtures: ten golden Anthropic → Codex cases -----------------------------------------


def test_contract_simple(catalog: ModelCatalog, cfg: Any) -> None:
    body = codex({"messages": [{"role": "user", "content": "Hello"}], "temperature": 0.5, "top_p": 0.9, "top_k": 40,
                  "stop_sequences": ["STOP"], "metadata": {"user_id": "u-1"}, "service_tier": "auto"}, catalog, cfg)
    assert body == {"model": "gpt-5.4", "instructions": "You are a helpful assistant.", "input": [user("Hello")], "tools": []}


def test_contract_developer_and_system_roles_stay_inline(catalog: ModelCatalog, cfg: Any) -> None:
    body = codex({"system": "Top rules.", "messages": [
        {"role": "user", "content": "one"},
        {"role": "developer", "content": "Be brief."},
        {"role": "system", "content": [{"type": "text", "text": "Mid-conversation note."}]},
        {"role": "user", "content": "two"},
    ]}, catalog, cfg)
    assert body["instructions"] == "Top rules."
    developer = [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": t}]}
                 for t in ("Be brief.", "Mid-conversation note.")]
    assert body["input"] == [user("one"), *developer, user("two")]


def test_contract_tool_round_trip_keeps_ids(catalog: ModelCatalog, cfg: Any) -> None:
    body = codex({"messages": [
        {"role": "user", "content": "Search for TypeScript"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me search."},
                                          {"type": "tool_use", "id": "call_abc", "name": "Grep", "input": {"q": "ts"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_abc", "content": "3 hits", "is_error": False}]},
    ]}, catalog, cfg)
    assert body["input"] == [
        user("Search for TypeScript"),
        assistant("Let me search."),
        {"type": "function_call", "call_id": "call_abc", "name": "Grep", "arguments": "{\"q\":\"ts\"}"},
        {"type": "function_call_output", "call_id": "call_abc", "output": "3 hits"},
    ]


def test_contract_tool_result_with_image_is_an_array_output(catalog: ModelCatalog, cfg: Any) -> None:
    body = codex({"messages": [
        {"role": "user", "content": "Show me"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_s", "name": "Screenshot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_s", "content": [
            {"type": "text", "text": "Here it is"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        ]}]},
    ]}, catalog, cfg)
    assert body["input"][-1] == {"type": "function_call_output", "call_id": "call_s", "output": [
        {"type": "input_text", "text": "Here it is"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
    ]}


def test_contract_thinking_blocks_in_history(catalog: ModelCatalog, cfg: Any) -> None:
    ours = reasoning_signature(ReasoningDone("rs_9", "", "gAAAAABsealed.sig"))
    body = codex({"messages": [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "from real Claude", "signature": "EqQBCkYIARgCKkB"},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy"},
            {"type": "thinking", "thinking": "Plan the answer", "signature": ours},
            {"type": "text", "text": "A"},
        ]},
        {"role": "user", "content": "Next"},
    ]}, catalog, cfg)
    reasoning = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Plan the answer"}], "encrypted_content": "gAAAAABsealed.sig"}
    assert body["input"] == [user("Q"), reasoning, assistant("A"), user("Next")]


@pytest.mark.parametrize(("budget", "effort"), [
    (1024, "low"), (1999, "low"), (2000, "medium"), (7999, "medium"), (8000, "high"), (19999, "high"), (20000, "xhigh"), (31999, "xhigh"),
])
def test_contract_budget_to_effort(budget: int, effort: str, catalog: ModelCatalog, cfg: Any) -> None:
    prepared = parse({"thinking": {"type": "enabled", "budget_tokens": budget}, "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
    assert prepared.turn.body["reasoning"] == {"effort": effort, "summary": "auto"}
    assert prepared.turn.body["include"] == ["reasoning.encrypted_content"]
    assert prepared.context.want_reasoning is True


def test_contract_parallel_tool_use(catalog: ModelCatalog, cfg: Any) -> None:
    body = codex({"messages": [
        {"role": "user", "content": "Paris and Tokyo?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_b", "name": "weather", "input": {"city": "Tokyo"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_a", "content": [{"type": "text", "text": "18C"}]},
            {"type": "tool_result", "tool_use_id": "call_b", "content": "25C"},
        ]},
    ]}, catalog, cfg)
    kinds = [(i.get("type"), i.get("call_id"), i.get("output")) for i in body["input"][1:]]
    assert kinds == [("function_call", "call_a", None), ("function_call", "call_b", None),
                     ("function_call_output", "call_a", "18C"), ("function_call_output", "call_b", "25C")]


def test_contract_billing_header_stripped_and_instructions_stable(catalog: ModelCatalog, cfg: Any) -> None:
    def instructions(cch: str) -> str:
        return codex({"system": [
            {"type": "text", "text": f"x-anthropic-billing-header: cc_version=2.1.84.{cch}; cch={cch};"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "  Second block.  ", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ], "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)["instructions"]

    assert instructions("da09b") == instructions("77f1e") == "You are Claude Code.\n\nSecond block."
    inline = codex({"system": "x-anthropic-billing-header: cch=1;\nKeep this line.", "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
    assert inline["instructions"] == "Keep this line."


def test_contract_empty_system_gets_default_instructions(catalog: ModelCatalog, cfg: Any) -> None:
    for system in ("", "   ", [], [{"type": "text", "text": "x-anthropic-billing-header: cch=1;"}]):
        assert codex({"system": system, "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)["instructions"] == "You are a helpful assistant."


# --- more request mapping ---------------------------------------------------------------------------


def test_block_order_is_kept(catalog: ModelCatalog, cfg: Any) -> None:
    body = codex({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt", "is_error": True},
            {"type": "text", "text": "And now explain."},
        ]},
    ]}, catalog, cfg)
    assert body["input"][2:] == [{"type": "function_call_output", "call_id": "call_1", "output": "Error: a.txt"}, user("And now explain.")]


def test_images_and_documents(catalog: ModelCatalog, cfg: Any) -> None:
    body = codex({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
        {"type": "document", "title": "spec.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}},
    ]}]}, catalog, cfg)
    assert body["input"] == [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Compare"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
        {"type": "input_image", "image_url": "https://example.com/cat.png"},
        {"type": "input_file", "filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
        {"type": "input_text", "text": "plain doc"},
    ]}]


def test_unanswered_tool_use_gets_a_stub_output(catalog: ModelCatalog, cfg: Any) -> None:
    body = codex({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_x", "name": "Bash", "input": {}}]},
        {"role": "user", "content": "never mind"},
    ]}, catalog, cfg)
    assert [i.get("type") for i in body["input"]] == ["message", "function_call", "function_call_output", "message"]
    assert body["input"][2]["call_id"] == "call_x"


def test_tools(catalog: ModelCatalog, cfg: Any) -> None:
    body = codex({"messages": [{"role": "user", "content": "x"}], "tools": [
        {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
        {"name": "NoArgs", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 8, "allowed_domains": ["example.com"],
         "user_location": {"type": "approximate", "city": "Paris"}},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    ]}, catalog, cfg)
    assert body["tools"] == [
        {"type": "function", "name": "Bash", "strict": False, "description": "Run a command",
         "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}},
        {"type": "function", "name": "NoArgs", "strict": False, "parameters": {"type": "object", "properties": {}}},
        {"type": "web_search", "user_location": {"type": "approximate", "city": "Paris"}},
    ]
    assert body["parallel_tool_calls"] is True and "tool_choice" not in body


def test_no_hosted_web_search_by_default(catalog: ModelCatalog, cfg: Any) -> None:
    web_search_fn = {"name": "WebSearch", "description": "Search the web", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}
    body = codex({"messages": [{"role": "user", "content": "x"}], "tools": [web_search_fn]}, catalog, cfg,)
    assert [t["type"] for t in body["tools"]] == ["function"]  # Claude Code's own WebSearch stays a function


def test_read_pages_hint_is_idempotent(catalog: ModelCatalog, cfg: Any) -> None:
    read = {"name": "Read", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"},
                                                                              "pages": {"type": "string", "description": "Page range."}}}}
    once = codex({"messages": [{"role": "user", "content": "x"}], "tools": [read]}, catalog, cfg)["tools"][0]["parameters"]
    assert once["properties"]["pages"]["description"].startswith("Page range. Omit this field entirely for non-PDF files")
    again = {**read, "input_schema": once}
    assert codex({"messages": [{"role": "user", "content": "x"}], "tools": [again]}, catalog, cfg)["tools"][0]["parameters"] == once


def test_deferred_tools_are_sent_once_loaded(catalog: ModelCatalog, cfg: Any) -> None:
    tools = [{"name": "ToolSearch", "input_schema": {"type": "object"}},
             {"name": "DeferredToolPlaceholder", "input_schema": {"type": "object"}, "defer_loading": True},
             {"name": "NotebookEdit", "input_schema": {"type": "object"}, "defer_loading": True}]
    first = codex({"messages": [{"role": "user", "content": "x"}], "tools": tools}, catalog, cfg)
    assert [t["name"] for t in first["tools"]] == ["ToolSearch"]
    loaded = codex({"tools": tools, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_t", "name": "ToolSearch", "input": {"query": "select:NotebookEdit"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_t", "content": [{"type": "tool_reference", "tool_name": "NotebookEdit"}]}]},
    ]}, catalog, cfg)
    assert [t["name"] for t in loaded["tools"]] == ["ToolSearch", "NotebookEdit"]
    assert loaded["input"][-1]["output"] == "Tool NotebookEdit is now available."


@pytest.mark.parametrize(("choice", "expected", "parallel"), [
    ({"type": "auto"}, "auto", True),
    ({"type": "any"}, "required", True),
    ({"type": "none"}, "none", True),
    ({"type": "tool", "name": "Bash"}, {"type": "function", "name": "Bash"}, True),
    ({"type": "tool", "name": "web_search"}, {"type": "web_search"}, True),
    ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
])
def test_tool_choice(choice: dict[str, Any], expected: Any, parallel: bool, catalog: ModelCatalog, cfg: Any) -> None:
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "web_search"}]
    body = codex({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice}, catalog, cfg)
    assert body["tool_choice"] == expected and body["parallel_tool_calls"] is parallel


def test_thinking_variants(catalog: ModelCatalog, cfg: Any) -> None:
    message = {"messages": [{"role": "user", "content": "x"}]}
    assert "reasoning" not in codex({**message, "thinking": {"type": "disabled"}}, catalog, cfg)
    assert "reasoning" not in codex(message, catalog, cfg)
    adaptive = parse({**message, "thinking": {"type": "adaptive"}}, catalog, cfg)
    assert adaptive.turn.body["reasoning"] == {"effort": "medium", "summary": "auto"}  # the model's default effort
    assert codex({**message, "thinking": {"type": "adaptive", "budget_tokens": 9000}}, catalog, cfg)["reasoning"]["effort"] == "high"
    assert codex({**message, "output_config": {"effort": "max"}}, catalog, cfg)["reasoning"]["effort"] == "xhigh"
    assert codex({**message, "model": "claude-sonnet-4-5-low"}, catalog, cfg)["reasoning"]["effort"] == "low"
    budget_beats_suffix = {**message, "model": "claude-sonnet-4-5-low", "thinking": {"type": "enabled", "budget_tokens": 10000}}
    assert codex(budget_beats_suffix, catalog, cfg)["reasoning"]["effort"] == "high"
    omitted = parse({**message, "thinking": {"type": "enabled", "budget_tokens": 4000, "display": "omitted"}}, catalog, cfg)
    assert omitted.turn.body["reasoning"] == {"effort": "medium"}  # no summary is asked for when none is shown
    assert omitted.context.want_reasoning and not omitted.context.thinking_text


def test_effort_is_clamped_to_the_model(catalog: ModelCatalog, cfg: Any) -> None:
    body = codex({"model": "gpt-5-codex", "thinking": {"type": "enabled", "budget_tokens": 31999},
                  "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
    assert body["model"] == "gpt-5-codex" and body["reasoning"]["effort"] == "high"  # it has no xhigh
    assert catalog.supported_effort("gpt-5-codex-mini", "low") == "medium"
    assert catalog.supported_effort("unknown-model", "xhigh") == "xhigh"


def test_model_aliases_and_echo(catalog: ModelCatalog, cfg: Any) -> None:
    for name, target in (("claude-opus-4-5", "gpt-5.5"), ("claude-sonnet-4-5-20250929", "gpt-5.4"),
                         ("claude-haiku-4-5-20251001", "gpt-5.3-codex"), ("claude-3-7-sonnet-latest", "gpt-5.4"),
                         ("some-other-model", "gpt-5.4")):
        prepared = parse({"model": name, "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
        assert prepared.turn.body["model"] == target
        assert prepared.context.model == name  # what Claude Code shows and keys its context window on
    fast = parse({"model": "claude-opus-4-5-fast", "messages": [{"role": "user", "content": "x"}]}, catalog, cfg)
    assert fast.turn.body["service_tier"] == "priority" and fast.turn.body["model"] == "gpt-5.5"


def test_conversation_key(catalog: ModelCatalog, cfg: Any) -> None:
    message = {"messages": [{"role": "user", "content": "Hello"}]}
    assert parse(message, catalog, cfg, {"x-claude-code-session-id": " sess-1 "}).turn.conversation_key == "sess-1"
    metadata = {"user_id": json.dumps({"device_id": "dev", "account_uuid": "", "session_id": "sess-2"})}
    assert parse({**message, "metadata": metadata}, catalog, cfg).turn.conversation_key == "sess-2"
    legacy = {"user_id": "user_abc_account__session_0b2c7d4e-1111-2222-3333-444455556666"}
    assert parse({**message, "metadata": legacy}, catalog, cfg).turn.conversation_key == "0b2c7d4e-1111-2222-3333-444455556666"
    no_device = {"user_id": json.dumps({"session_id": "sess-3"})}
    derived = parse({**message, "metadata": no_device}, catalog, cfg).turn.conversation_key
    later = parse({"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"},
                                {"role": "user", "content": "more"}]}, catalog, cfg).turn.conversation_key
    assert derived == later and derived not in (None, "sess-3")  # same conversation → same derived key


@pytest.mark.parametrize("body", [
    {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]},  # no max_tokens
    {"model": "claude-sonnet-4-5", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]},
    {"model": "claude-sonnet-4-5", "max_tokens": True, "messages": [{"role": "user", "content": "x"}]},
    {"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": []},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"content": "x"}]},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": 5}]},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": [{"text": "no type"}]}]},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "system": 7},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "enabled"}},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "maybe"}},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "tool"}},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "tools": [{"description": "no name"}]},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "tools": {"name": "t"}},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "tools": "t"},
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": {"role": "user", "content": "x"}},
])
def test_invalid_bodies(body: dict[str, Any], catalog: ModelCatalog, cfg: Any) -> None:
    with pytest.raises(BadRequest) as raised:
        anthropic.parse_request(request(body), catalog, cfg)
    assert raised.value.message.startswith("Invalid request: ")


def test_malformed_json(catalog: ModelCatalog, cfg: Any) -> None:
    with pytest.raises(BadRequest) as raised:
        anthropic.parse_request(request(b"{nope"), catalog, cfg)
    status, payload = error_payload(raised.value)
    assert (status, payload) == (400, {"type": "error", "error": {"type": "invalid_request_error", "message": "Malformed JSON request body"}})


# --- streaming response -----------------------------------------------------------------------------


def test_stream_tool_call_event_order_and_usage() -> None:
    events = stream(TOOL_STREAM, context())
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["model"] == "claude-sonnet-4-5" and start["id"].startswith("msg_") and len(start["id"]) == 28
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
    assert events[4][1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}
    assert events[8][1] == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                            "usage": {"input_tokens": 15, "output_tokens": 15, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5}}
    message = sdk_message(events)
    assert message.content[1].input == {"location": "NYC"} and message.stop_reason == "tool_use"


def test_stream_text_only() -> None:
    events = stream(text_stream("Hel", "lo"), context(want_reasoning=False))
    message = sdk_message(events)
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "Hello"
    assert message.stop_reason == "end_turn" and message.usage.cache_read_input_tokens == 5


def test_stream_parallel_tool_calls_get_distinct_indexes() -> None:
    def added(item_id: str, call_id: str, name: str) -> tuple[str, Any]:
        return ("response.output_item.added", {"item": {"type": "function_call", "id": item_id, "call_id": call_id, "name": name}})

    def args(item_id: str, delta: str) -> tuple[str, Any]:
        return ("response.function_call_arguments.delta", {"item_id": item_id, "delta": delta})

    def done(item_id: str, arguments: str) -> tuple[str, Any]:
        return ("response.function_call_arguments.done", {"item_id": item_id, "arguments": arguments})

    pairs = [("response.created", {"response": {"id": "r"}}), added("fc_a", "call_a", "tool_a"), added("fc_b", "call_b", "tool_b"),
             args("fc_a", "{\"x\":"), args("fc_b", "{\"y\":"), args("fc_a", "1}"), args("fc_b", "2}"),
             done("fc_a", "{\"x\":1}"), done("fc_b", "{\"y\":2}"), ("response.completed", {"response": {"id": "r"}})]
    events = stream(pairs, context())
    stops = [data["index"] for name, data in events if name == "content_block_stop"]
    assert sorted(stops) == [0, 1] and len(stops) == 2  # each block closed exactly once
    deltas: dict[int, str] = {}
    for name, data in events:
        if name == "content_block_delta":
            deltas[data["index"]] = deltas.get(data["index"], "") + data["delta"]["partial_json"]
    assert deltas == {0: "{\"x\":1}", 1: "{\"y\":2}"}
    message = sdk_message(events)
    assert [(b.id, b.input) for b in message.content] == [("call_a", {"x": 1}), ("call_b", {"y": 2})]


def test_stream_done_without_start_and_arguments_without_deltas() -> None:
    pairs = [("response.created", {"response": {"id": "r"}}),
             ("response.function_call_arguments.done", {"item_id": "fc_1", "call_id": "call_1", "name": "Bash", "arguments": "{\"command\":\"ls\"}"}),
             ("response.completed", {"response": {"id": "r"}})]
    events = stream(pairs, context())
    json_deltas = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert json_deltas == ["{\"command\":\"ls\"}"]
    message = sdk_message(events)
    assert message.content[0].id == "call_1" and message.content[0].input == {"command": "ls"} and message.stop_reason == "tool_use"


def test_stream_read_pages_is_sanitised() -> None:
    pairs = [("response.created", {"response": {"id": "r"}}),
             ("response.output_item.added", {"item": {"type": "function_call", "id": "fc_r", "call_id": "call_r", "name": "Read"}}),
             ("response.function_call_arguments.delta", {"item_id": "fc_r", "delta": "{\"file_path\":\"/a.py\","}),
             ("response.function_call_arguments.delta", {"item_id": "fc_r", "delta": "\"pages\":\"\"}"}),
             ("response.function_call_arguments.done", {"item_id": "fc_r", "arguments": "{\"file_path\":\"/a.py\",\"pages\":\"\"}"}),
             ("response.completed", {"response": {"id": "r"}})]
    events = stream(pairs, context())
    assert [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"] == ["{\"file_path\":\"/a.py\"}"]


def test_stream_thinking_signature_round_trips(catalog: ModelCatalog, cfg: Any) -> None:
    events = stream(reasoning_stream("Plan the answer", encrypted="gAAAAABsealed.sig"), context())
    message = sdk_message(events)
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Plan the answer"
    assert thinking.signature == "cxr1.rs_1.gAAAAABsealed.sig"
    assert [d["delta"]["type"] for n, d in events if n == "content_block_delta" and d["index"] == 0][-1] == "signature_delta"
    assert text.text == "Answer"
    body = codex({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": [b.to_dict() for b in message.content]},
                               {"role": "user", "content": "more"}]}, catalog, cfg)
    assert body["input"][1] == {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Plan the answer"}],
                                "encrypted_content": "gAAAAABsealed.sig"}


def test_stream_reasoning_without_summary_or_omitted_display() -> None:
    unsummarised = sdk_message(stream(reasoning_stream(None), context()))
    assert unsummarised.content[0].type == "thinking" and unsummarised.content[0].thinking == ""
    assert unsummarised.content[0].signature == "cxr1.rs_1.gAAAAABsealed"
    omitted_events = stream(reasoning_stream("Private plan"), context(thinking_text=False))
    assert not [d for n, d in omitted_events if n == "content_block_delta" and d["delta"]["type"] == "thinking_delta"]
    omitted = sdk_message(omitted_events)
    assert (omitted.content[0].thinking, omitted.content[0].signature) == ("", "cxr1.rs_1.gAAAAABsealed")
    no_thinking = sdk_message(stream(reasoning_stream("Private plan"), context(want_reasoning=False)))
    assert [b.type for b in no_thinking.content] == ["text"]
    nothing_to_replay = sdk_message(stream(reasoning_stream(None, encrypted=None), context()))
    assert [b.type for b in nothing_to_replay.content] == ["text"]


@pytest.mark.parametrize(("reason", "expected"), [("max_output_tokens", "max_tokens"), ("content_filter", "refusal")])
def test_stream_incomplete(reason: str, expected: str) -> None:
    pairs = text_stream("cut")[:-1] + [("response.incomplete", {"response": {
        "id": "r", "status": "incomplete", "incomplete_details": {"reason": reason}, "usage": {"input_tokens": 9, "output_tokens": 3}}})]
    events = stream(pairs, context())
    assert events[-2][1]["delta"]["stop_reason"] == expected and events[-2][1]["usage"]["output_tokens"] == 3
    assert events[-1][0] == "message_stop"


def test_stream_failure_is_an_error_event() -> None:
    pairs = text_stream("partial")[:-1] + [("response.failed", {"response": {"id": "r", "error": {"code": "server_error", "message": "boom"}}})]
    translator = anthropic.StreamTranslator(context())
    events = frames(b"".join(translator.feed(e) for e in run_events(pairs)))
    assert [n for n, _ in events][-1] == "error" and "message_stop" not in [n for n, _ in events]
    assert events[-1][1]["error"]["type"] == "api_error" and events[-1][1]["error"]["message"].endswith("boom")
    assert translator.fail(UpstreamError(500, "x", "again")) == b""  # nothing after the error


def test_keepalive_is_a_ping_after_message_start() -> None:
    translator = anthropic.StreamTranslator(context())
    first, second = frames(translator.keepalive()), frames(translator.keepalive())
    assert [n for n, _ in first] == ["message_start", "ping"] and [n for n, _ in second] == ["ping"]
    rest = frames(b"".join(translator.feed(e) for e in run_events(text_stream("hi"))))
    assert "message_start" not in [n for n, _ in rest]
    failing = anthropic.StreamTranslator(context())
    failing.keepalive()
    assert [n for n, _ in frames(failing.fail(NoAccountError(503, "no_available_accounts", "none")))] == ["error"]


# --- non-streaming response -------------------------------------------------------------------------


def collect(pairs: list[tuple[str, Any]]) -> CollectedTurn:
    parser = CodexStreamParser()
    collected = CollectedTurn()
    for event in run_events(pairs, parser):
        collected.add(event.deltas)
    return collected.finalize(parser)


def test_render_response_tool_call() -> None:
    payload = orjson.loads(anthropic.render_response(collect(TOOL_STREAM), context()).body)
    assert payload["model"] == "claude-sonnet-4-5" and payload["type"] == "message" and payload["role"] == "assistant"
    assert payload["content"] == [{"type": "thinking", "thinking": "Thinking...", "signature": ""},
                                  {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "NYC"}}]
    assert payload["stop_reason"] == "tool_use" and payload["stop_sequence"] is None
    assert payload["usage"] == {"input_tokens": 15, "output_tokens": 15, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5}


def test_render_response_thinking_and_text() -> None:
    payload = orjson.loads(anthropic.render_response(collect(reasoning_stream("Plan it")), context()).body)
    assert payload["content"] == [{"type": "thinking", "thinking": "Plan it", "signature": "cxr1.rs_1.gAAAAABsealed"},
                                  {"type": "text", "text": "Answer"}]
    assert payload["stop_reason"] == "end_turn"
    hidden = orjson.loads(anthropic.render_response(collect(reasoning_stream("Plan it")), context(want_reasoning=False)).body)
    assert hidden["content"] == [{"type": "text", "text": "Answer"}]


def test_cache_usage_arithmetic() -> None:
    from core.codex.events import Usage

    usage = usage_payload(Usage(input_tokens=70_000_000, output_tokens=10, cached_tokens=1_180_000))
    assert usage["input_tokens"] == 68_820_000 and usage["cache_read_input_tokens"] == 1_180_000


# --- errors and count_tokens --------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "status", "kind"), [
    (BadRequest("Invalid request: x"), 400, "invalid_request_error"),
    (Unauthorized("Invalid proxy API key"), 401, "authentication_error"),
    (UpstreamError(429, "usage_limit_reached", "limit", retry_after=42.2), 429, "rate_limit_error"),
    (UpstreamError(503, "server_is_overloaded", "busy"), 529, "overloaded_error"),
    (NoAccountError(503, "no_available_accounts", "No usable ChatGPT account"), 529, "overloaded_error"),
    (UpstreamError(500, "server_error", "oops"), 500, "api_error"),
    (UpstreamError(502, "stream_disconnected", "gone"), 502, "api_error"),
    (UpstreamError(403, "forbidden", "banned"), 403, "permission_error"),
])
def test_error_envelope(error: Any, status: int, kind: str) -> None:
    reply = anthropic.render_error(error)
    body = orjson.loads(reply.body)
    assert reply.status == status and body["type"] == "error" and body["error"]["type"] == kind and body["error"]["message"]
    if status == 429:
        assert reply.headers["retry-after"] == "42"


def test_count_tokens(catalog: ModelCatalog, cfg: Any) -> None:
    def count(body: dict[str, Any]) -> int:
        reply = anthropic.count_tokens(request(body, path="/v1/messages/count_tokens"), catalog, cfg)
        assert reply.status == 200
        return orjson.loads(reply.body)["input_tokens"]

    assert count({"model": "gpt-5.5", "messages": [{"role": "user", "content": "hello"}]}) == 12  # a fixed vector: the estimate must not drift
    text = {"model": "m", "messages": [{"role": "user", "content": "word " * 400}]}
    assert 495 <= count(text) <= 520
    assert count({"model": "m", "messages": [{"role": "user", "content": "漢字" * 50}]}) >= 100  # one token per CJK character
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 400_000}}
    with_image = count({"model": "m", "messages": [{"role": "user", "content": [image]}]})
    assert IMAGE_TOKENS <= with_image < IMAGE_TOKENS + 20  # base64 is not text
    tools = [{"name": "Bash", "description": "Run a shell command", "input_schema": {"type": "object"}}]
    assert count({**text, "tools": tools, "system": "Be brief."}) > count(text)
    with pytest.raises(BadRequest):
        anthropic.count_tokens(request({"model": "m", "messages": []}, path="/v1/messages/count_tokens"), catalog, cfg)


@pytest.mark.parametrize("tools", ["Bash", {"name": "Bash"}, [1]])
def test_count_tokens_refuses_wrongly_typed_tools(tools: Any, catalog: ModelCatalog, cfg: Any) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools}
    with pytest.raises(BadRequest, match="tools: must be an array of tool objects") as raised:
        anthropic.count_tokens(request(body, path="/v1/messages/count_tokens"), catalog, cfg)
    reply = anthropic.render_error(raised.value)
    assert reply.status == 400 and orjson.loads(reply.body)["error"]["type"] == "invalid_request_error"
