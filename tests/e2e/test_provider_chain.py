"""A second instance of this gateway used as a custom provider of the first: the real thing on both
ends (two mitmdump processes, each with its own account on the fake backend), over the Responses
wire and the Chat Completions wire, streamed, with tools, from two client protocols."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import openai
import pytest

from codex_fake import FakeCodexThread, mint_access_token
from tests.support.accounts import served
from tests.support.providers import add_provider, clear_providers
from tests.support.proxy import ProxyProcess

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture
def second(start_proxy: Callable[..., ProxyProcess]) -> ProxyProcess:
    gateway = start_proxy("second")
    gateway.add_account(mint_access_token(account_id="acc-second", plan="plus", email="second@example.com"), label="second")
    return gateway


@pytest.mark.parametrize("wire", ["responses", "chat"])
def test_a_second_gateway_serves_as_a_custom_provider(proxy: ProxyProcess, second: ProxyProcess, fake: FakeCodexThread, wire: str) -> None:
    clear_providers(proxy)
    created = add_provider(proxy, "custom", second.base_url, [second.key], id="gateway", name="Second gateway", wire=wire)
    assert "gpt-5.4" in [m["id"] for m in created["fetched_models"]] and created["models_error"] is None

    client = anthropic.Anthropic(base_url=proxy.origin, api_key=proxy.key, max_retries=0, timeout=30)
    fake.script({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}, "call_id": "call_chain_1"}]}, {"text": "Cold in Oslo."})
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}]
    with client.messages.stream(model="gateway/gpt-5.4", max_tokens=200, tools=tools,
                                messages=[{"role": "user", "content": "Weather in Oslo?"}]) as stream:
        first = stream.get_final_message()
    use = first.content[-1]
    assert first.stop_reason == "tool_use" and (use.name, use.input, use.id) == ("get_weather", {"city": "Oslo"}, "call_chain_1")
    assert served(fake)[-1] == "acc-second"  # the second gateway's own account answered

    follow = client.messages.create(model="gateway/gpt-5.4", max_tokens=200, tools=tools, messages=[
        {"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "content": [use.model_dump(exclude_none=True, exclude={"caller"})]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "-5C"}]}])  # fmt: skip
    assert follow.content[0].text == "Cold in Oslo."
    upstream = fake.requests("/codex/responses")[-1]["body"]["input"]
    assert [i["type"] for i in upstream if i.get("type") != "message"] == ["function_call", "function_call_output"]
    assert upstream[-1]["output"] == "-5C" and served(fake)[-1] == "acc-second"

    chunks = openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30).chat.completions.create(
        model="gateway/gpt-5.4", stream=True, messages=[{"role": "user", "content": "through two gateways"}])  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: through two gateways"
    rows = second.request_log("protocol = ?", "responses" if wire == "responses" else "openai")
    assert rows and rows[-1]["status"] == 200 and rows[-1]["account_id"]
    assert proxy.request_log("provider = ?", "gateway")[-1]["model"] == "gpt-5.4"
