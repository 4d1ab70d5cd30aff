"""Builders for upstream Codex events, for translator unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from core.codex.events import CodexStreamParser
from core.protocols.base import CollectedTurn
from core.turn.model import UpstreamEvent


def run_events(pairs: list[tuple[str, dict[str, Any]]], parser: CodexStreamParser | None = None) -> Iterator[UpstreamEvent]:
    parser = parser or CodexStreamParser()
    for name, data in pairs:
        event = UpstreamEvent(name, data, orjson.dumps(data))
        event.deltas = parser.feed(name, data)
        yield event


USAGE = {"input_tokens": 20, "output_tokens": 15, "input_tokens_details": {"cached_tokens": 5},
         "output_tokens_details": {"reasoning_tokens": 7}}

TOOL_STREAM: list[tuple[str, dict[str, Any]]] = [
    ("response.created", {"type": "response.created", "response": {"id": "resp_1"}}),
    ("response.reasoning_summary_text.delta", {"type": "response.reasoning_summary_text.delta", "delta": "Thinking..."}),
    ("response.output_item.added", {"type": "response.output_item.added", "output_index": 1,
                                    "item": {"type": "function_call", "id": "fc_item_1", "call_id": "call_1", "name": "get_weather"}}),
    ("response.function_call_arguments.delta", {"type": "response.function_call_arguments.delta", "item_id": "fc_item_1", "delta": "{\"location\":"}),
    ("response.function_call_arguments.delta", {"type": "response.function_call_arguments.delta", "item_id": "fc_item_1", "delta": "\"NYC\"}"}),
    ("response.function_call_arguments.done", {"type": "response.function_call_arguments.done", "item_id": "fc_item_1", "arguments": "{\"location\":\"NYC\"}"}),
    ("response.completed", {"type": "response.completed", "response": {"id": "resp_1", "usage": USAGE}}),
]


def text_stream(*chunks: str, usage: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    pairs: list[tuple[str, dict[str, Any]]] = [("response.created", {"type": "response.created", "response": {"id": "resp_t"}})]
    pairs += [("response.output_text.delta", {"type": "response.output_text.delta", "item_id": "msg_1", "delta": c}) for c in chunks]
    pairs.append(("response.completed", {"type": "response.completed", "response": {"id": "resp_t", "usage": usage or USAGE}}))
    return pairs


def collect(pairs: list[tuple[str, dict[str, Any]]]) -> CollectedTurn:
    """A non-streamed turn gathered from ``pairs``."""
    collected = CollectedTurn()
    for event in run_events(pairs):
        collected.add(event.deltas)
    return collected
