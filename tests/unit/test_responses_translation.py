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
