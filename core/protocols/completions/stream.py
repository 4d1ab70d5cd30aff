"""Codex events as streamed ``text_completion`` SSE frames."""

from __future__ import annotations

import orjson

from core.codex.events import Finished, TextDelta
from core.protocols.base import DeltaStream, Failure
from core.protocols.completions.response import CompletionContext, finish_reason, usage_payload
from core.protocols.openai_chat.errors import error_payload


class StreamTranslator(DeltaStream):
    """Text deltas → ``text_completion`` chunks (reasoning is not part of this API), ``[DONE]`` last."""

    def __init__(self, context: CompletionContext) -> None:
        self._context = context
        self._head = {"id": context.completion_id, "object": "text_completion", "created": context.created, "model": context.model}
        self._echo = context.echo

    def _chunk(self, text: str, reason: str | None = None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": reason}
        return b"data: " + orjson.dumps({**self._head, "choices": [choice]}) + b"\n\n"

    def on_text(self, delta: TextDelta) -> bytes:
        echo, self._echo = self._echo, ""
        return self._chunk(echo + delta.text)

    def on_finished(self, delta: Finished) -> bytes:
        self._done = True
        echo, self._echo = self._echo, ""
        out = (self._chunk(echo) if echo else b"") + self._chunk("", finish_reason(delta))
        if self._context.include_usage:
            out += b"data: " + orjson.dumps({**self._head, "choices": [], "usage": usage_payload(delta.usage)}) + b"\n\n"
        return out + b"data: [DONE]\n\n"

    def error_frame(self, error: Failure) -> bytes:
        return b"data: " + orjson.dumps(error_payload(error)) + b"\n\n"
