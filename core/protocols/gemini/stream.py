"""Codex events as ``GenerateContentResponse`` chunks."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.events import Finished, ImageGenerated, ReasoningDelta, TextDelta, ToolCallDone
from core.protocols.base import DeltaStream, Failure
from core.protocols.gemini.errors import error_payload
from core.protocols.gemini.response import GeminiContext, call_part, finish_reason, image_part, response_payload

JSON_ARRAY_CONTENT_TYPE = "application/json; charset=UTF-8"


class StreamTranslator(DeltaStream):
    """Codex events → ``GenerateContentResponse`` chunks, as SSE (``alt=sse``) or a JSON array."""

    def __init__(self, context: GeminiContext) -> None:
        self._context = context
        self._sse = context.sse
        self.content_type = "text/event-stream" if self._sse else JSON_ARRAY_CONTENT_TYPE
        self._opened = False  # JSON array: "[" written
        self._calls = 0
        self._malformed = False

    def _frame(self, payload: dict[str, Any]) -> bytes:
        data = orjson.dumps(payload)
        if self._sse:
            return b"data: " + data + b"\r\n\r\n"
        prefix = b",\r\n" if self._opened else b"["
        self._opened = True
        return prefix + data

    def _chunk(self, parts: list[dict[str, Any]]) -> bytes:
        return self._frame(response_payload(self._context, parts))

    def on_text(self, delta: TextDelta) -> bytes:
        return self._chunk([{"text": delta.text}])

    def on_reasoning(self, delta: ReasoningDelta) -> bytes:
        return self._chunk([{"text": delta.text, "thought": True}]) if self._context.include_thoughts else b""

    def on_tool_call(self, delta: ToolCallDone) -> bytes:
        part = call_part(delta)
        if part is None:
            self._malformed = True
            return b""
        self._calls += 1
        return self._chunk([part])  # Gemini sends a call whole, never partial args

    def on_image(self, delta: ImageGenerated) -> bytes:
        return self._chunk([image_part(delta)])

    def on_finished(self, delta: Finished) -> bytes:
        self._done = True
        reason = "MALFORMED_FUNCTION_CALL" if self._malformed and not self._calls else finish_reason(delta)
        # An empty text part rather than no parts: SDK users print ``chunk.text`` on every chunk.
        final = self._frame(response_payload(self._context, [{"text": ""}], reason, delta.usage))
        return final if self._sse else final + b"]"

    def keepalive(self) -> bytes:
        # Whitespace only: SSE comments break both google-genai parsers (Python raises on the
        # line, JS stalls on it); whitespace is also valid anywhere in the JSON array.
        return b"\r\n"

    def error_frame(self, error: Failure) -> bytes:
        frame = self._frame(error_payload(error))
        return frame if self._sse else frame + b"]"
