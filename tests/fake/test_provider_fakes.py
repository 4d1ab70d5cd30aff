"""The provider fakes against the official SDKs' own expectations: every answer validates strictly
against the SDK's types (pydantic ``model_validate``, not the SDKs' lenient construction), streams
parse event by event, and errors raise the SDK exception the real API's would."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from openai.types import CreateEmbeddingResponse, ImagesResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from provider_fakes import FakeAnthropic, FakeGemini, FakeOpenAI, FakeOpenRouter

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    started = {"openai": FakeOpenAI(), "anthropic": FakeAnthropic(), "gemini": FakeGemini(), "openrouter": FakeOpenRouter()}
    for fake in started.values():
        fake.start()
    yield started
    for fake in started.values():
        fake.stop()


def sse_data(response: httpx.Response) -> list[tuple[str, Any]]:
    events, name = [], ""
    for line in response.text.splitlines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and line != "data: [DONE]":
            events.append((name, orjson.loads(line[6:])))
    return events


def post(fake: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(fake.base_url + path, json=body, headers=headers, timeout=10)


# --- OpenAI ----------------------------------------------------------------------------------------------


def test_openai_chat_validates_against_the_sdk(fakes: dict[str, Any]) -> None:
    fake = fakes["openai"]
    auth = {"Authorization": "Bearer test-key"}
    fake.script({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]})
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]}
    whole = ChatCompletion.model_validate(post(fake, "/chat/completions", body, auth).json())
    assert whole.choices[0].finish_reason == "tool_calls" and whole.choices[0].message.tool_calls[0].function.name == "get_weather"
    streamed = post(fake, "/chat/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}, auth)
    assert streamed.text.rstrip().endswith("data: [DONE]")
    chunks = [ChatCompletionChunk.model_validate(data) for _, data in sse_data(streamed)]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-2].choices[0].finish_reason == "stop"


def test_openai_responses_embeddings_images_models_validate(fakes: dict[str, Any]) -> None:
    fake = fakes["openai"]
    auth = {"Authorization": "Bearer test-key"}
    body = {"model": "o4-mini", "input": "hello", "reasoning": {"effort": "low"}, "include": ["reasoning.encrypted_content"]}
    whole = Response.model_validate(post(fake, "/responses", body, auth).json())
    assert [o.type for o in whole.output] == ["reasoning", "message"] and whole.output[0].encrypted_content
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    events = [adapter.validate_python(data) for _, data in sse_data(post(fake, "/responses", {**body, "stream": True}, auth))]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    CreateEmbeddingResponse.model_validate(post(fake, "/embeddings", {"model": "text-embedding-3-small", "input": ["a"], "dimensions": 4}, auth).json())
    ImagesResponse.model_validate(post(fake, "/images/generations", {"model": "gpt-image-1", "prompt": "a cat"}, auth).json())
    listing = httpx.get(fake.base_url + "/models", headers=auth).json()
    assert [Model.model_validate(m).id for m in listing["data"]][:2] == ["gpt-4.1-mini", "gpt-4o-mini"]


def test_openai_errors_raise_what_the_real_api_makes_the_sdk_raise(fakes: dict[str, Any]) -> None:
    client = openai.OpenAI(base_url=fakes["openai"].base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        client.models.list()
    client = openai.OpenAI(base_url=fakes["openai"].base_url, api_key="test-key", max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-0", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="o4-mini", messages=[{"role": "user", "content": "x"}], temperature=0.2)
    assert refused.value.code == "unsupported_value" and refused.value.param == "temperature"
    with pytest.raises(openai.BadRequestError, match="must be a response to a preceeding message with 'tool_calls'"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "tool", "tool_call_id": "x", "content": "y"}])
    fakes["openai"].fault("test-key", 429)
    with pytest.raises(openai.RateLimitError) as limited:
        client.models.list()
    assert limited.value.response.headers["retry-after"] == "2"


def test_openrouter_shape(fakes: dict[str, Any]) -> None:
    fake = fakes["openrouter"]
    client = openai.OpenAI(base_url=fake.base_url, api_key="test-key", max_retries=0)
    fake.script({"reasoning": "First, think.", "text": "Done."})
    stream = post(fake, "/chat/completions", {"model": "deepseek/deepseek-r1", "messages": [{"role": "user", "content": "x"}], "stream": True,
                                              "reasoning": {"effort": "high"}}, {"Authorization": "Bearer test-key"})  # fmt: skip
    assert stream.text.startswith(": OPENROUTER PROCESSING")
    deltas = [data["choices"][0]["delta"] for _, data in sse_data(stream) if data["choices"]]
    assert "".join(d.get("reasoning", "") for d in deltas) == "First, think." and "".join(d.get("content") or "" for d in deltas) == "Done."
    entry = next(m for m in client.models.list().data if m.id == "deepseek/deepseek-r1")
    assert entry.context_length == 163840 and "reasoning" in entry.supported_parameters  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError, match="is not a valid model ID"):
        client.chat.completions.create(model="nope/nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError, match="User not found"):
        openai.OpenAI(base_url=fake.base_url, api_key="sk-or-wrong", max_retries=0).models.list()


# --- Anthropic ---------------------------------------------------------------------------------------------


def test_anthropic_messages_validate_and_stream_in_order(fakes: dict[str, Any]) -> None:
    fake = fakes["anthropic"]
    headers = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
    fake.script({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}], "text": "Let me check."})
    body = {"model": "claude-sonnet-4-5-20250929", "max_tokens": 4000, "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}, "tools": [{"name": "get_weather", "input_schema": WEATHER}]}  # fmt: skip
    message = Message.model_validate(post(fake, "/v1/messages", body, headers).json())
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"] and message.stop_reason == "tool_use"
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    names = [name for name, data in sse_data(post(fake, "/v1/messages", {**body, "stream": True}, headers))
             if name == "ping" or adapter.validate_python(data)]  # fmt: skip
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]


def test_anthropic_request_rules(fakes: dict[str, Any]) -> None:
    client = anthropic.Anthropic(base_url=fakes["anthropic"].base_url, api_key="test-key", max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="`max_tokens` must be greater than `thinking.budget_tokens`"):
        client.messages.create(model="claude-sonnet-4-5-20250929", max_tokens=1024, thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=[{"role": "user", "content": "x"}])  # fmt: skip
    with pytest.raises(anthropic.BadRequestError, match="does not support thinking"):
        client.messages.create(model="claude-3-5-haiku-20241022", max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=[{"role": "user", "content": "x"}])  # fmt: skip
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        client.messages.create(model="claude-3-5-haiku-20241022", max_tokens=10, messages=[
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "y"}]}])  # fmt: skip
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        client.messages.create(model="claude-sonnet-4-5-20250929", max_tokens=10, messages=[
            {"role": "user", "content": "x"}, {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "forged"}]},
            {"role": "user", "content": "y"}])  # fmt: skip
    with pytest.raises(anthropic.NotFoundError, match="model: claude-0"):
        client.messages.create(model="claude-0", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
        anthropic.Anthropic(base_url=fakes["anthropic"].base_url, api_key="wrong", max_retries=0).models.list()
    page = client.models.list(limit=2)
    assert [m.id for m in page.data] == ["claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805"] and page.has_more


# --- Gemini ----------------------------------------------------------------------------------------------------


def test_gemini_through_google_genai(fakes: dict[str, Any]) -> None:
    fake = fakes["gemini"]
    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=fake.base_url))
    fake.script({"reasoning": "Ponder.", "text": "Answer."})
    thinking = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024))
    parts = [p for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="x", config=thinking)
             for p in c.candidates[0].content.parts]  # fmt: skip
    assert "".join(p.text for p in parts if p.thought) == "Ponder." and "".join(p.text for p in parts if not p.thought) == "Answer."
    array = httpx.post(fake.base_url + "/v1beta/models/gemini-2.0-flash:streamGenerateContent", headers={"x-goog-api-key": "test-key"},
                       json={"contents": [{"parts": [{"text": "hi"}]}]}).json()  # fmt: skip
    assert isinstance(array, list) and array[-1]["candidates"][0]["finishReason"] == "STOP"
    stranger = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=fake.base_url))
    with pytest.raises(genai_errors.ClientError) as bad_key:
        stranger.models.generate_content(model="gemini-2.0-flash", contents="x")
    assert bad_key.value.code == 400 and bad_key.value.status == "INVALID_ARGUMENT" and "API key not valid" in str(bad_key.value)
    with pytest.raises(genai_errors.ClientError, match="not enabled for this model"):
        client.models.generate_content(model="gemini-2.0-flash", contents="x", config=thinking)
    with pytest.raises(genai_errors.ClientError, match="function response turn comes immediately after a function call turn"):
        client.models.generate_content(model="gemini-2.0-flash", contents=[types.Content(role="user", parts=[
            types.Part(function_response=types.FunctionResponse(name="f", response={"output": "x"}))])])  # fmt: skip
    fake.fault("test-key", 429)
    with pytest.raises(genai_errors.ClientError) as limited:
        client.models.generate_content(model="gemini-2.0-flash", contents="x")
    assert limited.value.code == 429 and limited.value.details["error"]["details"][0]["retryDelay"] == "5s"
