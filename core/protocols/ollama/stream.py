"""Codex events as Ollama's NDJSON lines."""

from __future__ import annotations

import time
from typing import Any

import orjson

from core.codex.events import Finished, ReasoningDelta, TextDelta, ToolCallDone
from core.protocols.base import DeltaStream, Failure
from core.protocols.ollama.errors import error_payload
from core.protocols.ollama.response import OllamaContext, answer_line, done_reason, metrics, tool_call_payload

NDJSON = "application/x-ndjson"


class StreamTranslator(DeltaStream):
    """Codex events → Ollama NDJSON lines, one upstream delta at a time."""

    content_type = NDJSON

    def __init__(self, context: OllamaContext) -> None:
        self._context = context
        self._calls = 0
        self._first_output_ns: int | None = None

    def _emit(self, payload: dict[str, Any]) -> bytes:
        return orjson.dumps(payload) + b"\n"

    def _progress(self, content: str = "", **extra: Any) -> bytes:
        if self._first_output_ns is None:
            self._first_output_ns = time.monotonic_ns()
        return self._emit({**answer_line(self._context, content, **extra), "done": False})

    def on_text(self, delta: TextDelta) -> bytes:
        return self._progress(delta.text)

    def on_reasoning(self, delta: ReasoningDelta) -> bytes:
        return self._progress(thinking=delta.text) if self._context.want_thinking else b""

    def on_tool_call(self, delta: ToolCallDone) -> bytes:
        call = tool_call_payload(delta, self._calls)
        if call is None:  # arguments that are not a JSON object: shown as text, as in render_response
            return self._progress(delta.arguments)
        if self._context.kind != "chat":
            return b""
        self._calls += 1
        return self._progress(tool_calls=[call])

    def on_finished(self, delta: Finished) -> bytes:
        self._done = True
        final = {**answer_line(self._context), "done": True, "done_reason": done_reason(delta),
                 **metrics(self._context, delta.usage, self._first_output_ns)}
        return self._emit(final)

    def keepalive(self) -> bytes:
        # NDJSON has no comments: an empty progress line is what Ollama itself sends while thinking.
        return self._emit({**answer_line(self._context), "done": False})

    def error_frame(self, error: Failure) -> bytes:
        return self._emit(error_payload(error))
