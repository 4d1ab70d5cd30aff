"""Codex events as Anthropic's stream events."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.events import (
    Finished,
    ReasoningDelta,
    ReasoningDone,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallDone,
    ToolCallStarted,
)
from core.protocols.anthropic.errors import error_payload
from core.protocols.anthropic.response import AnthropicContext, stop_reason, usage_payload
from core.protocols.anthropic.thinking import reasoning_signature, thinking_block
from core.protocols.anthropic.tools import EMPTY_STRING_OPTIONALS, tool_input
from core.protocols.base import DeltaStream, Failure
from core.turn.model import UpstreamEvent


def _frame(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


class StreamTranslator(DeltaStream):
    """Codex events → Anthropic stream events: ``message_start``, then content blocks (thinking,
    text, one per tool call) with sequential indexes, then ``message_delta`` and ``message_stop``.
    Image results have no handler: no hosted image tool is ever declared for Anthropic clients."""

    def __init__(self, context: AnthropicContext) -> None:
        self._context = context
        self._started = False
        self._next_index = 0
        self._open: tuple[str, int] | None = None  # the thinking or text block being written
        self._tools: dict[str, int] = {}  # call id → block index
        self._open_tools: set[int] = set()
        self._held: set[str] = set()  # calls whose arguments are sent whole at the end (sanitised)

    def feed(self, event: UpstreamEvent) -> bytes:
        # message_start goes out with the first event, whatever it carries.
        if self._started:
            return DeltaStream.feed(self, event)
        return self._head() + DeltaStream.feed(self, event)

    def on_text(self, delta: TextDelta) -> bytes:
        start = self._block("text", {"type": "text", "text": ""})
        return start + self._delta(self._index(), {"type": "text_delta", "text": delta.text})

    def on_reasoning(self, delta: ReasoningDelta) -> bytes:
        if not (self._context.want_reasoning and self._context.thinking_text):
            return b""
        if not self._is_open("thinking") and not delta.text.strip():
            return b""  # a summary-part separator before any thinking text
        start = self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        return start + self._delta(self._index(), {"type": "thinking_delta", "thinking": delta.text})

    def on_reasoning_done(self, delta: ReasoningDone) -> bytes:
        return self._end_thinking(delta) if self._context.want_reasoning else b""

    def on_tool_call_started(self, delta: ToolCallStarted) -> bytes:
        return self._start_tool(delta.call_id, delta.name)

    def on_tool_call_args(self, delta: ToolCallArgsDelta) -> bytes:
        index = self._tools.get(delta.call_id)
        if index is None or delta.call_id in self._held:
            return b""
        return self._delta(index, {"type": "input_json_delta", "partial_json": delta.delta})

    def on_tool_call(self, delta: ToolCallDone) -> bytes:
        return self._end_tool(delta)

    def keepalive(self) -> bytes:
        # message_start first: SDKs reject any event before it, and it commits nothing upstream.
        return self._head() + _frame("ping", {})

    def error_frame(self, error: Failure) -> bytes:
        return _frame("error", error_payload(error)[1])

    # --- blocks --------------------------------------------------------------------------------

    def _head(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message = {
            "id": self._context.message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._context.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_payload(None),
        }
        return _frame("message_start", {"message": message})

    def _is_open(self, kind: str) -> bool:
        return self._open is not None and self._open[0] == kind

    def _index(self) -> int:
        assert self._open is not None
        return self._open[1]

    def _start(self, block: dict[str, Any]) -> tuple[int, bytes]:
        index = self._next_index
        self._next_index += 1
        return index, _frame("content_block_start", {"index": index, "content_block": block})

    def _block(self, kind: str, empty: dict[str, Any]) -> bytes:
        """Make sure a ``kind`` block is the open one (closing another first)."""
        if self._is_open(kind):
            return b""
        closing = self._close_open()
        index, start = self._start(empty)
        self._open = (kind, index)
        return closing + start

    def _close_open(self) -> bytes:
        if self._open is None:
            return b""
        index = self._open[1]
        self._open = None
        return _frame("content_block_stop", {"index": index})

    @staticmethod
    def _delta(index: int, delta: dict[str, Any]) -> bytes:
        return _frame("content_block_delta", {"index": index, "delta": delta})

    def _end_thinking(self, reasoning: ReasoningDone) -> bytes:
        signature = reasoning_signature(reasoning)
        if self._is_open("thinking"):
            index = self._index()
            self._open = None
            sign = self._delta(index, {"type": "signature_delta", "signature": signature}) if signature else b""
            return sign + _frame("content_block_stop", {"index": index})
        block = thinking_block(reasoning, self._context.thinking_text)  # nothing was streamed for it
        if block is None:
            return b""
        index, start = self._start({"type": "thinking", "thinking": "", "signature": ""})
        out = [self._close_open(), start]
        if block["thinking"]:
            out.append(self._delta(index, {"type": "thinking_delta", "thinking": block["thinking"]}))
        if signature:
            out.append(self._delta(index, {"type": "signature_delta", "signature": signature}))
        out.append(_frame("content_block_stop", {"index": index}))
        return b"".join(out)

    def _start_tool(self, call_id: str, name: str) -> bytes:
        if call_id in self._tools:
            return b""
        closing = self._close_open()
        index, start = self._start({"type": "tool_use", "id": call_id, "name": name, "input": {}})
        self._tools[call_id] = index
        self._open_tools.add(index)
        if name in EMPTY_STRING_OPTIONALS:
            self._held.add(call_id)
        return closing + start

    def _end_tool(self, call: ToolCallDone) -> bytes:
        out = [self._start_tool(call.call_id, call.name)]
        index = self._tools[call.call_id]
        if index not in self._open_tools:
            return b""
        if call.call_id in self._held:
            arguments = orjson.dumps(tool_input(call)).decode()
        else:
            arguments = "" if call.had_deltas else call.arguments
        if arguments:
            out.append(self._delta(index, {"type": "input_json_delta", "partial_json": arguments}))
        self._open_tools.discard(index)
        out.append(_frame("content_block_stop", {"index": index}))
        return b"".join(out)

    def on_finished(self, delta: Finished) -> bytes:
        self._done = True
        out = [self._close_open()]
        out += [_frame("content_block_stop", {"index": index}) for index in sorted(self._open_tools)]
        self._open_tools.clear()
        message = {"stop_reason": stop_reason(delta, bool(self._tools)), "stop_sequence": None}
        out.append(_frame("message_delta", {"delta": message, "usage": usage_payload(delta.usage)}))
        out.append(_frame("message_stop", {}))
        return b"".join(out)
