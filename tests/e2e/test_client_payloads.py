"""What clients beyond the SDKs' happy path send, through the official ``openai`` SDK: legacy
Completions (editors' edit predictions), Cursor Agent's Responses-shaped bodies on the chat endpoint
(``input``, ``custom`` ApplyPatch tools, nested ``reasoning.effort``), the harmless fields clients
add that the backend would refuse, and opencode's camelCase options."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai import Stream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from codex_fake import FakeCodexThread
from core.codex.request import ALLOWED_FIELDS
from tests.support.proxy import ProxyProcess

PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n"
APPLY_PATCH = {"type": "custom", "name": "ApplyPatch", "description": "Use this tool to edit files.",
               "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}}
READ_FILE = {"type": "function", "name": "ReadFile", "description": "Read a file.", "defer_loading": True,
             "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
# Fields clients send that the backend rejects or cannot honour: dropped, never a failed turn.
HARMLESS = {"user": "cursor-user-1", "prompt_cache_retention": "24h", "stop_sequences": ["\n\n"], "top_k": 40,
            "temperature": 0.7, "metadata": {"a": "b"}}


def upstream(fake: FakeCodexThread) -> dict[str, Any]:
    return fake.requests("/codex/responses")[-1]["body"]


# --- legacy Completions ----------------------------------------------------------------------------


def test_completion_prompt_in_text_out(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"text": " world!"})
    completion = openai_client.completions.create(model="gpt-5.4", prompt="Hello", max_tokens=16, temperature=0.2, stop=["\n"])
    assert completion.object == "text_completion" and completion.model == "gpt-5.4"
    assert completion.choices[0].text == " world!" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    body = upstream(fake)
    assert set(body) <= ALLOWED_FIELDS and "temperature" not in body and "max_output_tokens" not in body
    assert body["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}]
    assert "continues the given text" in body["instructions"]


def test_completion_streams_with_suffix_and_echo(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"text": ["return ", "a + b"]})
    stream = openai_client.completions.create(model="gpt-5.4", prompt="def add(a, b):\n    ", suffix="\n\nprint(add(1, 2))",
                                              stream=True, echo=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "def add(a, b):\n    return a + b"  # echo puts the prompt in front
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    prompt = upstream(fake)["input"][0]["content"][0]["text"]
    assert prompt.startswith("Text before the gap:\ndef add(a, b):") and prompt.endswith("Text after the gap:\n\n\nprint(add(1, 2))")
    assert "fills the gap" in upstream(fake)["instructions"]


def test_completion_refusals_in_openai_envelope(proxy: ProxyProcess) -> None:
    headers = {"Authorization": f"Bearer {proxy.key}"}
    for body, message in (({"model": "gpt-5.4", "prompt": ["a", "b"]}, "one prompt per request"),
                          ({"model": "gpt-5.4", "prompt": [1, 2, 3]}, "token-id prompts"),
                          ({"model": "gpt-5.4"}, "'prompt' must be a string")):
        answer = httpx.post(proxy.base_url + "/completions", json=body, headers=headers, timeout=30)
        assert answer.status_code == 400 and message in answer.json()["error"]["message"]
        assert answer.json()["error"]["type"] == "invalid_request_error"
    assert httpx.post(proxy.origin + "/completions", json={"prompt": "x"}, timeout=30).status_code == 401  # root alias, key checked


# --- Cursor Agent's bodies on /v1/chat/completions -------------------------------------------------


def cursor_call(client: openai.OpenAI, body: dict[str, Any], stream: bool = False) -> Any:
    """Cursor's body as it sends it (no ``messages``): the SDK's own request path, unvalidated."""
    headers = {"User-Agent": "cursor/3.14.27"}
    if stream:
        return client.post("/chat/completions", body={**body, "stream": True}, cast_to=ChatCompletion, stream=True,
                           stream_cls=Stream[ChatCompletionChunk], options={"headers": headers})
    return client.post("/chat/completions", body=body, cast_to=ChatCompletion, options={"headers": headers})


def test_cursor_apply_patch_streams_as_a_function_call(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"custom_tool_calls": [{"name": "ApplyPatch", "input": PATCH, "call_id": "call_patch"}]})
    body = {"model": "gpt-5.4", "instructions": "You are Cursor's agent.", "reasoning": {"effort": "high"},
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "create hello.txt"}]}],
            "tools": [APPLY_PATCH, READ_FILE], **HARMLESS}
    chunks = list(cursor_call(openai_client, body, stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].type == "function" and calls[0].function.name == "ApplyPatch" and calls[0].id == "call_patch"
    assert "".join(tc.function.arguments or "" for tc in calls) == PATCH  # the raw patch, not JSON
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"

    sent = upstream(fake)
    assert sent["instructions"] == "You are Cursor's agent." and sent["reasoning"]["effort"] == "high"
    tools = {t["name"]: t for t in sent["tools"]}
    assert tools["ApplyPatch"] == APPLY_PATCH  # the grammar goes up intact
    assert tools["ReadFile"]["parameters"]["required"] == ["path"] and "defer_loading" not in tools["ReadFile"]
    assert set(sent) <= ALLOWED_FIELDS and not {"temperature", "top_k", "stop_sequences", "prompt_cache_retention", "metadata"} & set(sent)


def test_cursor_history_becomes_native_custom_calls(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"text": "Patched."})
    history = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "create hello.txt"}]},
        {"type": "function_call", "call_id": "call_patch", "name": "ApplyPatch", "arguments": PATCH},  # Cursor's envelope
        {"type": "function_call_output", "call_id": "call_patch", "output": "Done: added hello.txt"},
        {"type": "custom_tool_call", "call_id": "call_p2", "name": "ApplyPatch", "input": PATCH},
        {"type": "custom_tool_call_output", "call_id": "call_p2", "output": [{"type": "input_text", "text": "Done again"}]},
        {"type": "input_text", "text": "thanks"},
    ]
    answer = cursor_call(openai_client, {"model": "gpt-5.4", "input": history, "tools": [APPLY_PATCH]})
    assert answer.choices[0].message.content == "Patched."
    items = upstream(fake)["input"]
    assert [i.get("type") for i in items] == ["message", "custom_tool_call", "custom_tool_call_output", "custom_tool_call",
                                              "custom_tool_call_output", "message"]
    assert items[1]["input"] == PATCH and items[2]["output"] == "Done: added hello.txt" and items[4]["output"] == "Done again"
    assert items[-1]["content"][0]["text"] == "thanks"


def test_harmless_fields_are_dropped_on_every_route(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"text": "ok"}, {"text": "ok"})
    chat = openai_client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}],
                                                 reasoning_effort="high", extra_body=HARMLESS)
    assert chat.choices[0].message.content == "ok"
    response = openai_client.responses.create(model="gpt-5.4", input="hi", temperature=0.7, user="someone",
                                              prompt_cache_retention="24h", extra_body={"top_k": 40, "stop_sequences": ["x"]},
                                              tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}])
    assert response.output_text == "ok"
    for request in fake.requests("/codex/responses")[-2:]:
        assert set(request["body"]) <= ALLOWED_FIELDS


# --- opencode ---------------------------------------------------------------------------------------


def test_opencode_camel_case_options(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"reasoning": "Thinking it over.", "text": "ok"})
    with openai_client.responses.stream(model="gpt-5.4", input="hi",
                                        extra_body={"reasoningEffort": "high", "reasoningSummary": "detailed", "textVerbosity": "low"}) as stream:
        events = list(stream)
    sent = upstream(fake)
    assert sent["reasoning"] == {"effort": "high", "summary": "detailed"} and sent["text"] == {"verbosity": "low"}
    added = {e.output_index: e.item.id for e in events if e.type == "response.output_item.added"}
    done = {e.output_index: e.item.id for e in events if e.type == "response.output_item.done"}
    assert added == done and any(e.type == "response.reasoning_summary_text.delta" for e in events)


@pytest.mark.parametrize(("effort", "sent"), [("minimal", "low"), ("high", "high")])
def test_chat_reasoning_camel_case_and_clamped(openai_client: openai.OpenAI, fake: FakeCodexThread, effort: str, sent: str) -> None:
    fake.script({"text": "ok"})
    openai_client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}], extra_body={"reasoningEffort": effort})
    assert upstream(fake)["reasoning"]["effort"] == sent  # gpt-5.4 has no "minimal": its nearest level instead of a 400


def test_root_paths_without_v1(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    """Recent Codex builds call ``/responses`` at the root; editors ``/completions`` and ``/chat/completions``."""
    client = openai.OpenAI(base_url=proxy.origin, api_key=proxy.key, max_retries=0, timeout=30)
    fake.script({"text": "root responses"}, {"text": "root completion"}, {"text": "root chat"})
    assert client.responses.create(model="gpt-5.4", input="hi").output_text == "root responses"
    assert client.completions.create(model="gpt-5.4", prompt="hi").choices[0].text == "root completion"
    assert client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content == "root chat"
