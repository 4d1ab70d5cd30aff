"""The official SDKs (openai, anthropic, google-genai) through the real proxy, each reaching a
ChatGPT-pool model and models on API-key providers (the provider fakes), streamed and not, with
tools: every client protocol reaches every provider wire."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from codex_fake import FakeCodexThread
from tests.support.providers import Fakes, standard_providers
from tests.support.proxy import ProxyProcess

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture
def providers(proxy: ProxyProcess, provider_fakes: Fakes) -> dict[str, dict[str, Any]]:
    return standard_providers(proxy, provider_fakes)


def openai_client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30)


def anthropic_client(proxy: ProxyProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.origin, api_key=proxy.key, max_retries=0, timeout=30)


def gemini_client(proxy: ProxyProcess) -> genai.Client:
    return genai.Client(api_key=proxy.key, http_options=types.HttpOptions(base_url=proxy.origin, timeout=30_000))


def tool_call(name: str = "get_weather", city: str = "Paris") -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": {"city": city}}]}


# --- OpenAI SDK -------------------------------------------------------------------------------------


def test_openai_sdk_reaches_pool_and_provider_models(proxy: ProxyProcess, fake: FakeCodexThread, provider_fakes: Fakes,
                                                     providers: dict[str, Any]) -> None:  # fmt: skip
    client = openai_client(proxy)
    pool = client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "to the pool"}])
    assert pool.choices[0].message.content == "You said: to the pool"
    assert fake.requests("/codex/responses")[-1]["body"]["model"] == "gpt-5.4"

    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "to openai"}], temperature=0.3,
                                            max_tokens=50)  # fmt: skip
    assert answer.choices[0].message.content == "You said: to openai" and answer.model == "gpt-4o-mini"
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    sent = provider_fakes.openai.requests("/chat/completions")[-1]
    assert sent["headers"]["authorization"] == "Bearer sk-proj-test-openai-0001"
    assert sent["body"]["model"] == "gpt-4o-mini" and sent["body"]["stream"] is True
    assert sent["body"]["temperature"] == 0.3 and sent["body"]["max_completion_tokens"] == 50

    chunks = list(client.chat.completions.create(model="meta-llama/llama-3.3-70b-instruct", stream=True,
                                                 messages=[{"role": "user", "content": "to openrouter"}]))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: to openrouter"
    assert provider_fakes.openrouter.requests("/chat/completions")[-1]["headers"]["authorization"] == "Bearer sk-or-v1-test-0001"
    rows = proxy.request_log("requested_model = ?", "meta-llama/llama-3.3-70b-instruct")
    assert rows and rows[-1]["provider"] == "openrouter" and rows[-1]["account_id"] is None and rows[-1]["status"] == 200


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5-20250929", "gemini-2.5-flash", "meta-llama/llama-3.3-70b-instruct"])
def test_openai_sdk_tool_round_trip_on_every_wire(proxy: ProxyProcess, provider_fakes: Fakes, providers: dict[str, Any], model: str) -> None:
    fake = {"gpt-4o-mini": provider_fakes.openai, "claude-sonnet-4-5-20250929": provider_fakes.anthropic,
            "gemini-2.5-flash": provider_fakes.gemini, "meta-llama/llama-3.3-70b-instruct": provider_fakes.openrouter}[model]  # fmt: skip
    fake.script(tool_call(), {"text": "It is sunny in Paris."})
    client = openai_client(proxy)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER}}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    stream = client.chat.completions.create(model=model, messages=messages, tools=tools, stream=True)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["name"] = (call.function.name if call.function else None) or entry["name"]
                entry["arguments"] += (call.function.arguments if call.function else "") or ""
    assert finish == "tool_calls" and [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [("get_weather", {"city": "Paris"})]
    call = calls[0]
    messages += [{"role": "assistant", "content": None, "tool_calls": [{"id": call["id"], "type": "function",
                                                                       "function": {"name": "get_weather", "arguments": call["arguments"]}}]},
                 {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 24C"}]  # fmt: skip
    final = client.chat.completions.create(model=model, messages=messages, tools=tools)
    assert final.choices[0].message.content == "It is sunny in Paris." and final.choices[0].finish_reason == "stop"
    assert len(fake.requests()) >= 2  # the provider checked the tool pairing itself (its own 400s otherwise)


def test_openai_responses_client_on_a_chat_provider(proxy: ProxyProcess, provider_fakes: Fakes, providers: dict[str, Any]) -> None:
    client = openai_client(proxy)
    response = client.responses.create(model="meta-llama/llama-3.3-70b-instruct", input="hello responses")
    assert response.output_text == "You said: hello responses" and response.status == "completed"
    with client.responses.stream(model="gpt-4o-mini", input="stream it") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and final.output_text == "You said: stream it"


# --- Anthropic SDK ----------------------------------------------------------------------------------


def test_anthropic_sdk_reaches_pool_openai_compatible_and_anthropic_providers(proxy: ProxyProcess, fake: FakeCodexThread,
                                                                             provider_fakes: Fakes, providers: dict[str, Any]) -> None:  # fmt: skip
    client = anthropic_client(proxy)
    pool = client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "to the pool"}])
    assert pool.content[0].text == "You said: to the pool" and fake.requests("/codex/responses")

    with client.messages.stream(model="gpt-4o-mini", max_tokens=100, messages=[{"role": "user", "content": "via chat wire"}]) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "You said: via chat wire" and message.stop_reason == "end_turn" and message.model == "gpt-4o-mini"
    assert provider_fakes.openai.requests("/chat/completions")[-1]["body"]["max_completion_tokens"] == 100

    provider_fakes.anthropic.script(tool_call())
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}]
    with client.messages.stream(model="claude-sonnet-4-5-20250929", max_tokens=100, tools=tools,
                                messages=[{"role": "user", "content": "Weather?"}]) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "tool_use"
    use = message.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    sent = provider_fakes.anthropic.requests("/v1/messages")[-1]
    assert sent["headers"]["x-api-key"] == "sk-ant-api03-test-0001" and sent["body"]["tools"][0]["input_schema"] == WEATHER

    follow = client.messages.create(model="claude-sonnet-4-5-20250929", max_tokens=100, tools=tools, messages=[
        {"role": "user", "content": "Weather?"}, {"role": "assistant", "content": [use.model_dump(exclude_none=True, exclude={"caller"})]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}])  # fmt: skip
    assert follow.content[0].text.startswith("You said:")


def test_anthropic_thinking_round_trips_through_an_anthropic_provider(proxy: ProxyProcess, provider_fakes: Fakes,
                                                                     providers: dict[str, Any]) -> None:  # fmt: skip
    """The provider's signed thinking block survives the trip to the client and back: the second
    turn (a tool result) is accepted only with the block the provider signed."""
    client = anthropic_client(proxy)
    provider_fakes.anthropic.script({**tool_call(), "reasoning": "I should look it up."}, {"text": "Sunny."})
    tools = [{"name": "get_weather", "input_schema": WEATHER}]
    thinking = {"type": "enabled", "budget_tokens": 2000}
    first = client.messages.create(model="claude-sonnet-4-5-20250929", max_tokens=4000, tools=tools, thinking=thinking,
                                   messages=[{"role": "user", "content": "Weather?"}])  # fmt: skip
    assert [b.type for b in first.content] == ["thinking", "tool_use"] and first.content[0].thinking == "I should look it up."
    sent = provider_fakes.anthropic.requests("/v1/messages")[-1]["body"]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2000} and sent["max_tokens"] == 4000
    history = [b.model_dump(exclude_none=True, exclude={"caller"}) for b in first.content]
    second = client.messages.create(model="claude-sonnet-4-5-20250929", max_tokens=4000, tools=tools, thinking=thinking, messages=[
        {"role": "user", "content": "Weather?"}, {"role": "assistant", "content": history},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[1].id, "content": "sunny"}]}])  # fmt: skip
    assert second.content[-1].text == "Sunny."
    replayed = provider_fakes.anthropic.requests("/v1/messages")[-1]["body"]["messages"][1]["content"][0]
    assert replayed["type"] == "thinking" and replayed["thinking"] == "I should look it up."


# --- Gemini SDK -------------------------------------------------------------------------------------


def test_gemini_sdk_reaches_pool_and_providers(proxy: ProxyProcess, fake: FakeCodexThread, provider_fakes: Fakes,
                                               providers: dict[str, Any]) -> None:  # fmt: skip
    client = gemini_client(proxy)
    assert client.models.generate_content(model="gemini-pool-name", contents="to the pool").text == "You said: to the pool"
    assert fake.requests("/codex/responses")
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="to gemini",
                                            config=types.GenerateContentConfig(max_output_tokens=64, temperature=0.5))  # fmt: skip
    assert answer.text == "You said: to gemini"
    sent = provider_fakes.gemini.requests(":streamGenerateContent")[-1]
    assert sent["headers"]["x-goog-api-key"] == "AIzaSy-test-gemini-0001" and sent["query"] == {"alt": "sse"}
    assert sent["body"]["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.5}
    streamed = "".join(c.text or "" for c in client.models.generate_content_stream(model="claude-3-5-haiku-20241022", contents="to claude"))
    assert streamed == "You said: to claude"


def test_gemini_sdk_function_calls_with_thought_signatures(proxy: ProxyProcess, provider_fakes: Fakes, providers: dict[str, Any]) -> None:
    """Gemini 3 refuses a function call sent back without its thought signature; the proxy keeps it."""
    client = gemini_client(proxy)
    provider_fakes.gemini.script(tool_call(), {"text": "Sunny in Paris."})
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[
        types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER)])])  # fmt: skip
    first = client.models.generate_content(model="gemini-3-pro-preview", contents="Weather in Paris?", config=config)
    call = first.function_calls[0]
    assert call.name == "get_weather" and call.args == {"city": "Paris"}
    contents = [types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]), first.candidates[0].content,
                types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(id=call.id, name="get_weather",
                                                                                                       response={"output": "sunny"}))])]  # fmt: skip
    second = client.models.generate_content(model="gemini-3-pro-preview", contents=contents, config=config)
    assert second.text == "Sunny in Paris."
    replayed = provider_fakes.gemini.requests(":streamGenerateContent")[-1]["body"]["contents"][1]["parts"][0]
    assert replayed["functionCall"]["name"] == "get_weather" and replayed["thoughtSignature"]
