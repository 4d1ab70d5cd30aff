"""Codex events as ``chat.completion.chunk`` SSE frames."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.events import (
    Finished,
    ImageGenerated,
    ReasoningDelta,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallDone,
    ToolCallStarted,
)
from core.protocols.base import DeltaStream, Failure
from core.protocols.openai_chat.errors import error_payload
from core.protocols.openai_chat.response import ChatContext, finish_reason, image_call_payload, usage_payload


class StreamTranslator(DeltaStream):
    """Codex events → ``chat.completion.chunk`` SSE frames, one upstream delta at a time."""

    def __init__(self, context: ChatContext) -> None:
        self._context = context
        head = {"id": context.completion_id, "object": "chat.completion.chunk", "created": context.created, "model": context.model}
        # Every chunk shares this prefix; only the delta is serialized per event.
        self._prefix = b"data: " + orjson.dumps(head)[:-1] + b',"choices":[{"index":0,"delta":'
        self._suffix = b',"finish_reason":null}]}\n\n'
        self._indexes: dict[str, int] = {}
        self._kinds: dict[str, str] = {}
        self._started = False

    def _chunk(self, delta: dict[str, Any]) -> bytes:
        return self._prefix + orjson.dumps(delta) + self._suffix

    def _head(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def on_text(self, delta: TextDelta) -> bytes:
        return self._head() + self._chunk({"content": delta.text})

    def on_reasoning(self, delta: ReasoningDelta) -> bytes:
        if not self._context.want_reasoning:
            return b""
        return self._head() + self._chunk({"reasoning_content": delta.text})

    def on_tool_call_started(self, delta: ToolCallStarted) -> bytes:
        head = self._head()
        index = self._indexes.setdefault(delta.call_id, len(self._indexes))
        kind = "function" if self._context.custom_as_function else delta.kind
        self._kinds[delta.call_id] = kind
        body = {"custom": {"name": delta.name, "input": ""}} if kind == "custom" else {"function": {"name": delta.name, "arguments": ""}}
        return head + self._chunk({"tool_calls": [{"index": index, "id": delta.call_id, "type": kind, **body}]})

    def on_tool_call_args(self, delta: ToolCallArgsDelta) -> bytes:
        return self._args(delta.call_id, delta.delta)

    def on_tool_call(self, delta: ToolCallDone) -> bytes:
        if not delta.had_deltas and delta.arguments:
            return self._args(delta.call_id, delta.arguments)
        return b""

    def on_image(self, delta: ImageGenerated) -> bytes:
        head = self._head()
        index = self._indexes.setdefault(delta.item_id, len(self._indexes))
        return head + self._chunk({"tool_calls": [{"index": index, **image_call_payload(delta)}]})

    def _args(self, call_id: str, text: str) -> bytes:
        index = self._indexes.get(call_id, 0)
        if self._kinds.get(call_id) == "custom":
            return self._chunk({"tool_calls": [{"index": index, "custom": {"input": text}}]})
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": text}}]})

    def on_finished(self, delta: Finished) -> bytes:
        self._done = True
        reason = finish_reason(delta, bool(self._indexes))
        head = self._head()
        final = self._prefix + b"{}" + b',"finish_reason":"' + reason.encode() + b'"}]}\n\n'
        usage = b""
        if self._context.include_usage:
            payload = {
                "id": self._context.completion_id,
                "object": "chat.completion.chunk",
                "created": self._context.created,
                "model": self._context.model,
                "choices": [],
                "usage": usage_payload(delta.usage),
            }
            usage = b"data: " + orjson.dumps(payload) + b"\n\n"
        return head + final + usage + b"data: [DONE]\n\n"

    def error_frame(self, error: Failure) -> bytes:
        return b"data: " + orjson.dumps(error_payload(error)) + b"\n\n"  # no [DONE]: the turn did not finish
