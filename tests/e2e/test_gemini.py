"""The Gemini API through the real proxy, driven by Google's official ``google-genai`` SDK."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

from codex_fake import FakeCodexThread
from core.codex.request import ALLOWED_FIELDS
from tests.support.proxy import ProxyProcess


def client_for(proxy: ProxyProcess, key: str | None = None, api_version: str | None = None) -> genai.Client:
    options = types.HttpOptions(base_url=proxy.origin, api_version=api_version, timeout=30_000)
    return genai.Client(api_key=key or proxy.key, http_options=options)


@pytest.fixture
def client(proxy: ProxyProcess) -> genai.Client:
    return client_for(proxy)


def last_upstream(fake: FakeCodexThread) -> dict[str, Any]:
    requests = fake.requests("/codex/responses")
    assert requests, "the fake backend received nothing"
    return requests[-1]


def test_generate(client: genai.Client, fake: FakeCodexThread) -> None:
    response = client.models.generate_content(
        model="gemini-2.5-pro",
        contents="Hello there",
        config=types.GenerateContentConfig(system_instruction="Be terse.", temperature=0.3, max_output_tokens=64, top_k=4),
    )
    assert response.text == "You said: Hello there"
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert response.model_version == "gemini-2.5-pro"
    usage = response.usage_metadata
    assert usage.prompt_token_count > 0 and usage.candidates_token_count > 0
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count

    sent = last_upstream(fake)
    body = sent["body"]
    assert set(body) <= ALLOWED_FIELDS, "a field the backend rejects was sent"
    assert body["instructions"] == "Be terse." and body["model"] == "gpt-5.4"
    assert body["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}]
    assert sent["headers"]["chatgpt-account-id"] == "acc-1"
    assert body["prompt_cache_key"].startswith("cp_")


def test_v1beta_path_and_rest_key_forms(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    beta = client_for(proxy, api_version="v1beta")
    assert beta.models.generate_content(model="gemini-2.5-flash", contents="beta").text == "You said: beta"
    body = {"contents": [{"parts": [{"text": "by query key"}]}]}
    url = proxy.origin + "/v1beta/models/gemini-2.5-flash:generateContent"
    by_query = httpx.post(url, params={"key": proxy.key}, json=body)
    by_bearer = httpx.post(url, headers={"Authorization": f"Bearer {proxy.key}"}, json=body)
    assert by_query.status_code == by_bearer.status_code == 200
    assert by_query.json()["candidates"][0]["content"]["parts"] == [{"text": "You said: by query key"}]


def test_stream_sse(client: genai.Client, fake: FakeCodexThread) -> None:
    fake.script({"text": ["Hel", "lo, ", "Gem", "ini"]})
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="stream please"))
    assert "".join(c.text or "" for c in chunks) == "Hello, Gemini"
    assert [c.candidates[0].finish_reason for c in chunks if c.candidates[0].finish_reason] == [types.FinishReason.STOP]
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.candidates_token_count > 0
    assert len(chunks) == 5 and len({c.response_id for c in chunks}) == 1


def test_stream_json_array_is_incremental(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    fake.script({"text": ["one ", "two ", "three"], "event_delay_ms": 300})
    url = proxy.origin + "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    with httpx.stream("POST", url, headers={"x-goog-api-key": proxy.key}, timeout=30,
                      json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        reads = response.iter_raw()
        first = b""
        while not first.strip():
            first = next(reads)
        assert first.lstrip().startswith(b"[{") and b"]" not in first[-2:]  # sent before the answer was complete
        raw = first + b"".join(reads)
    array = json.loads(raw)
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in array) == "one two three"
    assert array[-1]["candidates"][0]["finishReason"] == "STOP" and "usageMetadata" in array[-1]


def test_function_calling_round_trip(client: genai.Client, fake: FakeCodexThread) -> None:
    weather = types.FunctionDeclaration(
        name="get_weather", description="Current weather for a city",
        parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]),
    )
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[weather])])
    fake.script({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "call_w1"}]})
    history: list[types.Content] = [types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])]
    first = client.models.generate_content(model="gemini-2.5-pro", contents=history, config=config)
    call = first.function_calls[0]
    assert (call.id, call.name, call.args) == ("call_w1", "get_weather", {"city": "Paris"})
    sent_tool = last_upstream(fake)["body"]["tools"][0]
    assert sent_tool == {"type": "function", "name": "get_weather", "strict": False, "description": "Current weather for a city",
                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}

    history += [first.candidates[0].content,
                types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"output": "18C and sunny"})])]
    history[-1].parts[0].function_response.id = call.id
    fake.script({"text": "It is 18C and sunny in Paris."})
    second = client.models.generate_content(model="gemini-2.5-pro", contents=history, config=config)
    assert second.text == "It is 18C and sunny in Paris."
    items = last_upstream(fake)["body"]["input"]
    assert [i.get("type") for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1]["call_id"] == items[2]["call_id"] == "call_w1"
    assert items[2]["output"] == "18C and sunny"


def get_temperature(city: str) -> str:
    """Current temperature in a city."""
    return f"{len(city)}C in {city}"


def test_automatic_function_calling(client: genai.Client, fake: FakeCodexThread) -> None:
    """The SDK runs the Python function itself and sends its result back: two upstream turns."""
    fake.script({"tool_calls": [{"name": "get_temperature", "arguments": {"city": "Rome"}}]})
    fake.script({"text": "Rome is at 4C."})
    response = client.models.generate_content(model="gemini-2.5-flash", contents="How warm is Rome?",
                                              config=types.GenerateContentConfig(tools=[get_temperature]))
    assert response.text == "Rome is at 4C."
    items = last_upstream(fake)["body"]["input"]
    call, output = items[1], items[2]
    assert call["type"] == "function_call" and output["type"] == "function_call_output"
    assert output["call_id"] == call["call_id"] and output["output"] == "4C in Rome"


def test_stream_function_call(client: genai.Client, fake: FakeCodexThread) -> None:
    fake.script({"tool_calls": [{"name": "a", "arguments": {"x": 1}, "call_id": "call_a"},
                                {"name": "b", "arguments": {"y": 2}, "call_id": "call_b"}]})
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="both", config=types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="a"), types.FunctionDeclaration(name="b")])],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode=types.FunctionCallingConfigMode.ANY)))))
    calls = [call for c in chunks for call in c.function_calls or []]
    assert [(c.id, c.name, c.args) for c in calls] == [("call_a", "a", {"x": 1}), ("call_b", "b", {"y": 2})]
    assert last_upstream(fake)["body"]["tool_choice"] == "required"


class City(BaseModel):
    name: str
    population: int
    landmarks: list[str] = []


def test_structured_output_with_pydantic_schema(client: genai.Client, fake: FakeCodexThread) -> None:
    fake.script({"text": '{"name": "Paris", "population": 2100000, "landmarks": ["Louvre"]}'})
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Describe Paris", config=types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=City))
    assert response.parsed == City(name="Paris", population=2100000, landmarks=["Louvre"])
    fmt = last_upstream(fake)["body"]["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["name"] == "gemini_schema"
    assert fmt["schema"]["type"] == "object" and fmt["schema"]["properties"]["population"] == {"title": "Population", "type": "integer"}
    assert fmt["schema"]["additionalProperties"] is False
    assert fmt["strict"] is False  # "landmarks" is optional: strict mode would reject the schema


def test_structured_output_with_json_schema(client: genai.Client, fake: FakeCodexThread) -> None:
    fake.script({"text": '{"ok": true}'})
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    response = client.models.generate_content(model="gemini-2.5-flash", contents="ok?", config=types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=schema))
    assert json.loads(response.text) == {"ok": True}
    fmt = last_upstream(fake)["body"]["text"]["format"]
    assert fmt["strict"] is True and fmt["schema"] == {**schema, "additionalProperties": False}


def test_thinking_budget_and_thoughts(client: genai.Client, fake: FakeCodexThread) -> None:
    fake.script({"reasoning": "Weighing the options.", "text": "42"})
    response = client.models.generate_content(model="gemini-2.5-pro", contents="meaning of life?", config=types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=8192, include_thoughts=True)))
    parts = response.candidates[0].content.parts
    assert [(p.text, bool(p.thought)) for p in parts] == [("Weighing the options.", True), ("42", False)]
    assert response.text == "42"  # the SDK leaves thoughts out of .text
    assert response.usage_metadata.thoughts_token_count > 0
    body = last_upstream(fake)["body"]
    assert body["reasoning"] == {"effort": "high", "summary": "auto"} and body["include"] == ["reasoning.encrypted_content"]

    fake.script({"reasoning": "Hidden.", "text": "ok"})
    quiet = client.models.generate_content(model="gemini-2.5-pro", contents="x", config=types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=0)))
    assert [p.text for p in quiet.candidates[0].content.parts] == ["ok"]
    assert last_upstream(fake)["body"]["reasoning"]["effort"] == "low"  # "no thinking" → gpt-5.4's lowest effort


def test_stream_thoughts(client: genai.Client, fake: FakeCodexThread) -> None:
    fake.script({"reasoning": "Plan.", "text": ["A", "B"]})
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="x", config=types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True))))
    parts = [p for c in chunks for p in c.candidates[0].content.parts or []]
    assert [p.text for p in parts if p.thought] == ["Plan."]
    assert "".join(p.text for p in parts if not p.thought) == "AB"


def test_image_input(client: genai.Client, fake: FakeCodexThread) -> None:
    pixel = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    client.models.generate_content(model="gemini-2.5-flash", contents=[
        types.Part.from_bytes(data=pixel, mime_type="image/png"), "What is in this picture?"])
    content = last_upstream(fake)["body"]["input"][0]["content"]
    assert content == [{"type": "input_image", "image_url": "data:image/png;base64," + base64.b64encode(pixel).decode()},
                       {"type": "input_text", "text": "What is in this picture?"}]


def test_models_list_get_and_count_tokens(client: genai.Client) -> None:
    names = [m.name for m in client.models.list()]
    assert "models/gpt-5.4" in names and "models/gpt-5.5" in names
    model = client.models.get(model="gemini-2.5-pro")
    assert model.name == "models/gemini-2.5-pro" and model.input_token_limit == 272000
    assert "generateContent" in (model.supported_actions or [])
    assert client.models.count_tokens(model="gemini-2.5-pro", contents="x" * 40).total_tokens == 10


def test_openai_clients_still_get_openai_models(proxy: ProxyProcess) -> None:
    listing = httpx.get(proxy.base_url + "/models").json()
    assert listing["object"] == "list" and "models" not in listing


# --- errors ----------------------------------------------------------------------------------------


def test_wrong_key_is_401_unauthenticated(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    wrong = client_for(proxy, key="wrong")  # keep a reference: the SDK closes its HTTP client when collected
    with pytest.raises(errors.ClientError) as raised:
        wrong.models.generate_content(model="gemini-2.5-pro", contents="x")
    assert raised.value.code == 401 and raised.value.status == "UNAUTHENTICATED"
    with pytest.raises(errors.ClientError) as listing:
        wrong.models.list()
    assert listing.value.code == 401
    assert fake.requests("/codex/responses") == []


@pytest.mark.parametrize(("body", "fragment"), [
    (b"{not json", "Malformed JSON"),
    (b'{"contents": []}', "contents must be a non-empty array"),
    (b'{"contents": [{"role": "user", "parts": []}]}', "parts must be a non-empty array"),
    (b'{"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}', "role must be"),
])
def test_bad_requests_are_400_invalid_argument(proxy: ProxyProcess, fake: FakeCodexThread, body: bytes, fragment: str) -> None:
    response = httpx.post(proxy.origin + "/v1beta/models/gemini-2.5-pro:generateContent", content=body,
                          headers={"x-goog-api-key": proxy.key, "content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT" and fragment in error["message"]
    assert fake.requests("/codex/responses") == []


def test_unknown_action_and_path(proxy: ProxyProcess) -> None:
    headers = {"x-goog-api-key": proxy.key}
    embed = httpx.post(proxy.origin + "/v1beta/models/text-embedding-004:embedContent", headers=headers, json={})
    assert embed.status_code == 501 and embed.json()["error"]["status"] == "UNIMPLEMENTED"
    unknown = httpx.post(proxy.origin + "/v1beta/models/x:frobnicate", headers=headers, json={})
    assert unknown.status_code == 400 and unknown.json()["error"]["status"] == "INVALID_ARGUMENT"
    missing = httpx.get(proxy.origin + "/v1beta/tunedModels", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_rate_limit_is_429_resource_exhausted(client: genai.Client, fake: FakeCodexThread) -> None:
    from codex_fake.faults import usage_limit_429

    fake.fault("acc-1", usage_limit_429(resets_in=90))
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.5-pro", contents="x")
    assert raised.value.code == 429 and raised.value.status == "RESOURCE_EXHAUSTED"
    details = raised.value.details["error"]["details"]
    assert details[0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    assert 60 <= int(details[0]["retryDelay"].rstrip("s")) <= 90


def test_upstream_rejection_reaches_client(client: genai.Client, fake: FakeCodexThread) -> None:
    fake.script({"http_error": {"status": 400, "body": {"detail": "Unsupported parameter: frobnicate"}}})
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.5-pro", contents="x")
    assert raised.value.code == 400 and "Unsupported parameter: frobnicate" in (raised.value.message or "")


def test_mid_stream_failure_raises_in_the_sdk(client: genai.Client, fake: FakeCodexThread) -> None:
    fake.script({"text": ["partial ", "answer"], "fail": {"code": "server_error", "message": "boom"}, "fail_after": 4})
    received: list[str] = []
    with pytest.raises(errors.ServerError) as raised:
        for chunk in client.models.generate_content_stream(model="gemini-2.5-pro", contents="x"):
            received.append(chunk.text or "")
    assert "partial " in "".join(received)
    assert raised.value.code == 500 and "boom" in (raised.value.message or "")


def test_incomplete_answer_is_max_tokens(client: genai.Client, fake: FakeCodexThread) -> None:
    cut = {"preset": "incomplete", "reason": "max_output_tokens", "text": "cut sho"}
    fake.script(cut, cut)
    response = client.models.generate_content(model="gemini-2.5-pro", contents="long story")
    assert response.text == "cut sho" and response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="long story"))
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_no_account_is_401_in_gemini_envelope(client: genai.Client, proxy: ProxyProcess) -> None:
    proxy.remove_all_accounts()
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.5-pro", contents="x")
    assert raised.value.code == 401 and raised.value.status == "UNAUTHENTICATED"
    assert "ChatGPT account" in (raised.value.message or "")


def test_request_is_logged_with_protocol(client: genai.Client, proxy: ProxyProcess) -> None:
    client.models.generate_content(model="gemini-log-check", contents="log me")
    rows = proxy.request_log("requested_model = ?", "gemini-log-check")
    assert rows and rows[0]["protocol"] == "gemini" and rows[0]["status"] == 200 and rows[0]["model"] == "gpt-5.4"
