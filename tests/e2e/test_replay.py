"""Recorded upstream sessions replayed as the Codex backend, offline, through every client protocol.

The backend here is mitmproxy's own server replay reading a flow file (tests/support/replay.py),
not the fake: the fake must see nothing. Fixtures are in tests/fixtures/replay (made by its
make_fixtures.py; a session recorded from the real backend is dropped in the same way)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from codex_fake import FakeCodexThread
from core.codex.sse import SSEParser
from tests.conftest import PROXY_KEY, with_one_account
from tests.fixtures.replay.make_fixtures import WEATHER_TOOL
from tests.support.proxy import ProxyProcess
from tests.support.replay import ReplayUpstream, read_flows, record_session, write_flows

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "replay"


@dataclass
class Outcome:
    """What a client got, in terms every protocol shares."""

    status: int = 200
    text: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)  # (name, parsed arguments)


def recorded_outcome(recording: Path) -> Outcome:
    """What the recorded backend answered: the outcome every protocol must reproduce."""
    [leg] = read_flows(recording)
    assert leg.response is not None
    if leg.response.status_code != 200:
        return Outcome(status=leg.response.status_code)
    outcome = Outcome()
    for event in SSEParser().feed(leg.response.content or b""):
        data = orjson.loads(event.data)
        if event.event == "response.output_text.delta":
            outcome.text += data["delta"]
        elif event.event == "response.output_item.done" and data["item"]["type"] == "function_call":
            outcome.tool_calls.append((data["item"]["name"], json.loads(data["item"]["arguments"])))
    return outcome


# --- one way to ask per protocol ------------------------------------------------------------------

QUESTION = "What did the recording say?"


def ask_chat(proxy: ProxyProcess) -> Outcome:
    client = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0)
    outcome = Outcome()
    try:
        stream = client.chat.completions.create(model="gpt-5.4", stream=True, tools=[WEATHER_TOOL],
                                                messages=[{"role": "user", "content": QUESTION}])
        calls: dict[int, dict[str, str]] = {}
        for chunk in stream:
            for choice in chunk.choices:
                outcome.text += choice.delta.content or ""
                for call in choice.delta.tool_calls or []:
                    entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
                    if call.function is not None:
                        entry["name"] += call.function.name or ""
                        entry["arguments"] += call.function.arguments or ""
        outcome.tool_calls = [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())]
    except openai.APIStatusError as error:
        outcome.status = error.status_code
    return outcome


def ask_responses(proxy: ProxyProcess) -> Outcome:
    client = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0)
    outcome = Outcome()
    tools: Any = [{"type": "function", **WEATHER_TOOL["function"]}]
    try:
        for event in client.responses.create(model="gpt-5.4", input=QUESTION, tools=tools, stream=True):
            if event.type == "response.output_text.delta":
                outcome.text += event.delta
            elif event.type == "response.output_item.done" and event.item.type == "function_call":
                outcome.tool_calls.append((event.item.name, json.loads(event.item.arguments)))
    except openai.APIStatusError as error:
        outcome.status = error.status_code
    return outcome


def ask_anthropic(proxy: ProxyProcess) -> Outcome:
    import anthropic

    client = anthropic.Anthropic(base_url=proxy.origin, api_key=PROXY_KEY, max_retries=0)
    tools: Any = [{"name": "get_weather", "input_schema": WEATHER_TOOL["function"]["parameters"]}]
    outcome = Outcome()
    try:
        with client.messages.stream(model="gpt-5.4", max_tokens=200, tools=tools,
                                    messages=[{"role": "user", "content": QUESTION}]) as stream:
            message = stream.get_final_message()
        outcome.text = "".join(block.text for block in message.content if block.type == "text")
        outcome.tool_calls = [(block.name, block.input) for block in message.content if block.type == "tool_use"]
    except anthropic.APIStatusError as error:
        outcome.status = error.status_code
    return outcome


def ask_gemini(proxy: ProxyProcess) -> Outcome:
    from google import genai
    from google.genai import errors, types

    client = genai.Client(api_key=PROXY_KEY, http_options=types.HttpOptions(base_url=proxy.origin))
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", parameters_json_schema=WEATHER_TOOL["function"]["parameters"])])
    outcome = Outcome()
    try:
        for chunk in client.models.generate_content_stream(model="gpt-5.4", contents=QUESTION,
                                                           config=types.GenerateContentConfig(tools=[tool])):
            for part in (chunk.candidates[0].content.parts or []) if chunk.candidates and chunk.candidates[0].content else []:
                if part.text and not part.thought:
                    outcome.text += part.text
                if part.function_call:
                    outcome.tool_calls.append((part.function_call.name, dict(part.function_call.args or {})))
    except errors.APIError as error:
        outcome.status = error.code
    return outcome


# protocol -> (the translator module it needs, how a client of it asks)
PROTOCOLS: dict[str, Callable[[ProxyProcess], Outcome]] = {
    "chat": ask_chat,
    "responses": ask_responses,
    "anthropic": ask_anthropic,
    "gemini": ask_gemini,
}


@pytest.fixture
def replay(start_proxy: Callable[..., ProxyProcess], tmp_path: Path) -> Callable[[Path], ProxyProcess]:
    """A proxy whose backend is a recording (each test gets fresh processes: replay pops answers)."""
    upstreams: list[ReplayUpstream] = []

    def start(recording: Path) -> ProxyProcess:
        upstream = ReplayUpstream(recording, tmp_path / f"replay{len(upstreams)}").start()
        upstreams.append(upstream)
        return with_one_account(start_proxy(f"proxy{len(upstreams)}", api={"base_url": upstream.base_url}))

    yield start  # type: ignore[misc]
    for upstream in upstreams:
        upstream.stop()


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.flows")))
def test_recorded_session_replays_through_every_protocol(protocol: str, fixture: str, replay: Callable[[Path], ProxyProcess],
                                                         fake: FakeCodexThread) -> None:
    ask = PROTOCOLS[protocol]
    recording = FIXTURES / f"{fixture}.flows"
    expected = recorded_outcome(recording)
    got = ask(replay(recording))
    assert got == expected
    assert fake.requests() == []  # answered from the file alone


def test_fixtures_are_recorded_shaped_and_carry_no_credentials() -> None:
    recordings = sorted(FIXTURES.glob("*.flows"))
    assert len(recordings) >= 3
    for recording in recordings:
        for leg in read_flows(recording):
            assert leg.request.pretty_url.startswith("https://chatgpt.com/backend-api/codex/")
            assert leg.request.headers["authorization"] == "[redacted]"
            assert leg.comment.startswith("upstream leg")


def test_a_fresh_recording_replays_the_same_answer(fake: FakeCodexThread, replay: Callable[[Path], ProxyProcess],
                                                    tmp_path: Path) -> None:
    """The documented loop end to end: record with codex_record, replay the file as the backend."""
    fake.script({"text": "Captured just now."})
    legs = record_session(fake, tmp_path, ask_chat)
    recording = tmp_path / "session.flows"
    write_flows(recording, legs)
    served = len(fake.requests())
    assert ask_chat(replay(recording)) == Outcome(text="Captured just now.")
    assert len(fake.requests()) == served
