"""Unit tests of the Responses passthrough's request filter (pure functions, no I/O)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from core.codex.catalog import ModelCatalog
from core.protocols import responses
from core.protocols.base import BadRequest, ClientRequest


def parse(body: Any, catalog: ModelCatalog, cfg: Any) -> Any:
    return responses.parse_request(ClientRequest("POST", "/v1/responses", {}, {}, orjson.dumps(body)), catalog, cfg)


def test_tools_pass_through_with_web_search_renamed(catalog: ModelCatalog, cfg: Any) -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}, {"type": "web_search_preview", "search_context_size": "low"}]
    codex = parse({"model": "gpt-5.4", "input": "x", "tools": tools}, catalog, cfg).turn.body
    assert codex["tools"] == [tools[0], {"type": "web_search", "search_context_size": "low"}]
    assert "tools" not in parse({"model": "gpt-5.4", "input": "x", "tools": None}, catalog, cfg).turn.body
    assert parse({"model": "gpt-5.4", "input": "x", "tools": []}, catalog, cfg).turn.body["tools"] == []


@pytest.mark.parametrize(("tools", "message"), [
    ("web_search", "'tools' must be an array"),
    ({"type": "function", "name": "f"}, "'tools' must be an array"),
    (0, "'tools' must be an array"),
    ([{"type": "function", "name": "f"}, "web_search"], "'tools' items must be objects"),
])
def test_wrongly_typed_tools_are_400s(tools: Any, message: str, catalog: ModelCatalog, cfg: Any) -> None:
    with pytest.raises(BadRequest, match=message) as raised:
        parse({"model": "gpt-5.4", "input": "x", "tools": tools}, catalog, cfg)
    reply = responses.render_error(raised.value)
    assert reply.status == 400
    assert orjson.loads(reply.body) == {"error": {"message": message, "type": "invalid_request_error", "param": "tools", "code": "invalid_request"}}


@pytest.mark.parametrize("raw", [{"role": "user", "content": "x"}, 5, ["x"]])
def test_wrongly_typed_input_is_a_400(raw: Any, catalog: ModelCatalog, cfg: Any) -> None:
    with pytest.raises(BadRequest) as raised:
        parse({"model": "gpt-5.4", "input": raw}, catalog, cfg)
    assert raised.value.param == "input"


def test_opencode_camel_case_options(catalog: ModelCatalog, cfg: Any) -> None:
    body = {"model": "gpt-5.4", "input": "x", "reasoningEffort": "high", "reasoningSummary": "detailed", "textVerbosity": "low"}
    codex = parse(body, catalog, cfg).turn.body
    assert codex["reasoning"] == {"effort": "high", "summary": "detailed"} and codex["text"] == {"verbosity": "low"}
    # The API's own spelling wins where both are given.
    codex = parse({**body, "reasoning": {"effort": "low"}}, catalog, cfg).turn.body
    assert codex["reasoning"] == {"effort": "low", "summary": "detailed"}


# A reasoning item whose id changes between output_item.added and .done (seen from the backend;
# opencode keys items by id and fails on it), as the events arrived.
RENAMED_REASONING = [
    ("response.created", {"type": "response.created", "response": {"id": "resp_r"}}),
    ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                    "item": {"type": "reasoning", "id": "rs_added", "summary": []}}),
    ("response.reasoning_summary_text.delta", {"type": "response.reasoning_summary_text.delta", "output_index": 0,
                                               "item_id": "rs_other", "summary_index": 0, "delta": "Thinking"}),
    ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0,
                                   "item": {"type": "reasoning", "id": "rs_other", "summary": [{"type": "summary_text", "text": "Thinking"}],
                                            "encrypted_content": "gAAAAAx"}}),
    ("response.output_item.added", {"type": "response.output_item.added", "output_index": 1,
                                    "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}),
    ("response.output_text.delta", {"type": "response.output_text.delta", "output_index": 1, "item_id": "msg_1", "delta": "Hi"}),
    ("response.completed", {"type": "response.completed", "response": {"id": "resp_r", "status": "completed", "output": [
        {"type": "reasoning", "id": "rs_other", "summary": []}, {"type": "message", "id": "msg_1", "role": "assistant", "content": []}]}}),
]


def test_an_item_keeps_the_id_it_was_announced_with() -> None:
    from tests.unit.codex_events import run_events

    translator = responses.StreamTranslator(responses.ResponsesContext("gpt-5.4"))
    frames = [translator.feed(event) for event in run_events(RENAMED_REASONING)]
    data = [orjson.loads(frame.split(b"data: ", 1)[1]) for frame in frames]
    assert data[2]["item_id"] == "rs_added" and data[2]["delta"] == "Thinking"
    assert data[3]["item"]["id"] == "rs_added" and data[3]["item"]["encrypted_content"] == "gAAAAAx"
    assert data[5]["item_id"] == "msg_1"  # items that kept their id pass unchanged
    assert frames[5] == b"event: response.output_text.delta\ndata: " + orjson.dumps(RENAMED_REASONING[5][1]) + b"\n\n"
    assert [item["id"] for item in data[6]["response"]["output"]] == ["rs_added", "msg_1"]
