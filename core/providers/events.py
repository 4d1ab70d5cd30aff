"""A provider's answer as the Codex Responses event stream, so every protocol translator (and the
Responses relay) handles it exactly like the ChatGPT backend's.

Each wire's stream parser tells a ``ResponsesEmitter`` what arrived (text, reasoning, tool-call
pieces, the end) and gets back the events the backend would have sent: items opened with
``output_item.added`` and closed with ``output_item.done`` one after another, increasing
``sequence_number``s, a terminal ``response.completed`` / ``response.incomplete`` carrying the items
and the usage, or an ``error`` event whose ``status`` says how the failure is to be treated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.protocols.base import random_id
from core.turn.model import UpstreamEvent


@dataclass(slots=True)
class TokenUsage:
    input_tokens: int = 0  # everything read, cached included
    output_tokens: int = 0  # everything written, reasoning included
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0

    def as_response_usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens, "cache_write_tokens": self.cache_write_tokens},
            "output_tokens": self.output_tokens, "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }  # fmt: skip


@dataclass(slots=True)
class _Item:
    item: dict[str, Any]
    index: int
    parts: list[str] = field(default_factory=list)


def _event(data: dict[str, Any]) -> UpstreamEvent:
    return UpstreamEvent(data["type"], data, orjson.dumps(data))


class ResponsesEmitter:
    def __init__(self, model: str, echo: dict[str, Any] | None = None, custom_tools: frozenset[str] = frozenset()) -> None:
        self.response_id = random_id("resp_")
        self._model = model
        self._echo = echo or {}
        self._custom = custom_tools  # custom tools a wire offers as functions taking {"input": "..."}
        self._created_at = int(time.time())
        self._seq = 0
        self._next_index = 0
        self._open: _Item | None = None  # the message or reasoning item being written
        self._calls: dict[str, _Item] = {}  # open tool calls by the wire's key
        self._output: list[dict[str, Any]] = []
        self.started = False
        self.finished = False

    # --- what the wire saw ---------------------------------------------------------------------

    def start(self, response_id: str | None = None) -> list[UpstreamEvent]:
        if self.started:
            return []
        self.started = True
        if response_id:
            self.response_id = response_id
        response = self._response("in_progress")
        return [self._emit({"type": "response.created", "response": response}),
                self._emit({"type": "response.in_progress", "response": response})]

    def text(self, delta: str) -> list[UpstreamEvent]:
        return self._write("message", delta, "response.output_text.delta", {"content_index": 0, "logprobs": []})

    def reasoning(self, delta: str) -> list[UpstreamEvent]:
        return self._write("reasoning", delta, "response.reasoning_summary_text.delta", {"summary_index": 0})

    def _write(self, kind: str, delta: str, event: str, extra: dict[str, Any]) -> list[UpstreamEvent]:
        if not delta or self.finished:
            return []
        out = self._ensure(kind)
        assert self._open is not None
        self._open.parts.append(delta)
        out.append(self._emit({"type": event, "item_id": self._open.item["id"], "output_index": self._open.index, "delta": delta, **extra}))
        return out

    def decode(self, raw: bytes) -> tuple[Any, list[UpstreamEvent]]:
        """A frame's JSON; when it is none, (None, the failure that ends the stream)."""
        try:
            return orjson.loads(raw), []
        except orjson.JSONDecodeError:
            return None, self.fail(502, "invalid_event", raw[:300].decode("utf-8", "replace"))

    def reasoning_signature(self, signature: str) -> list[UpstreamEvent]:
        """The provider's seal on the reasoning (Anthropic's signature): kept as ``encrypted_content``."""
        if self.finished:
            return []
        out = self._ensure("reasoning")
        assert self._open is not None
        self._open.item["encrypted_content"] = signature
        return out

    def call_start(self, key: str, call_id: str, name: str) -> list[UpstreamEvent]:
        if self.finished:
            return []
        out = self._close_open()
        for other in list(self._calls):
            if other != key:
                out += self.call_end(other)  # items come one after another
        if key in self._calls:
            return out
        custom = name in self._custom
        item = {"id": random_id("ctc_" if custom else "fc_"), "type": "custom_tool_call" if custom else "function_call",
                "status": "in_progress", "call_id": call_id, "name": name}
        item["input" if custom else "arguments"] = ""
        call = self._calls[key] = _Item(item, self._take_index())
        out.append(self._emit({"type": "response.output_item.added", "output_index": call.index, "item": dict(item)}))
        return out

    def call_args(self, key: str, delta: str) -> list[UpstreamEvent]:
        call = self._calls.get(key)
        if call is None or not delta:
            return []
        call.parts.append(delta)
        if call.item["type"] == "custom_tool_call":
            return []  # the input is known only once the JSON wrapper is complete
        return [self._emit({"type": "response.function_call_arguments.delta", "item_id": call.item["id"],
                            "output_index": call.index, "delta": delta})]

    def call_end(self, key: str, arguments: str | None = None) -> list[UpstreamEvent]:
        call = self._calls.pop(key, None)
        if call is None:
            return []
        text = arguments if arguments is not None else "".join(call.parts)
        item = call.item
        item["status"] = "completed"
        if item["type"] == "custom_tool_call":
            item["input"] = _custom_input(text)
            done = {"type": "response.custom_tool_call_input.done", "item_id": item["id"], "output_index": call.index,
                    "input": item["input"]}
        else:
            item["arguments"] = text or "{}"
            done = {"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": call.index,
                    "arguments": item["arguments"]}
        return [self._emit(done), self._done(item, call.index)]

    def call(self, call_id: str, name: str, arguments: str) -> list[UpstreamEvent]:
        """A whole tool call at once (Gemini sends them so)."""
        key = f"whole:{call_id}"
        out = self.call_start(key, call_id, name)
        out += self.call_args(key, arguments)
        return out + self.call_end(key)

    def finish(self, usage: TokenUsage | None, incomplete: str | None = None) -> list[UpstreamEvent]:
        """The end: ``incomplete`` is the reason the answer was cut short (``max_output_tokens``,
        ``content_filter``), None when it is complete."""
        if self.finished:
            return []
        out = self.start() + self._close_open()
        for key in list(self._calls):
            out += self.call_end(key)
        self.finished = True
        status = "incomplete" if incomplete else "completed"
        extra: dict[str, Any] = {"output": list(self._output), "usage": usage.as_response_usage() if usage else None}
        if incomplete:
            extra["incomplete_details"] = {"reason": incomplete}
        out.append(self._emit({"type": f"response.{status}", "response": self._response(status, **extra)}))
        return out

    def fail(self, status: int, code: str, message: str) -> list[UpstreamEvent]:
        """An error the provider reported in the stream. ``status`` is how the pipeline treats it
        (429 and 5xx may go to another key or provider while nothing was produced)."""
        if self.finished:
            return []
        self.finished = True
        error = {"type": "error", "code": code, "message": message}
        return self.start() + [self._emit({"type": "error", "status": status, "code": code, "message": message, "error": error})]

    # --- the shapes ----------------------------------------------------------------------------------

    def _emit(self, data: dict[str, Any]) -> UpstreamEvent:
        data["sequence_number"] = self._seq
        self._seq += 1
        return _event(data)

    def _take_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _ensure(self, kind: str) -> list[UpstreamEvent]:
        out = self.start()
        if self._open is not None and self._open.item["type"] == kind:
            return out
        out += self._close_open()
        for key in list(self._calls):
            out += self.call_end(key)
        if kind == "message":
            item = {"id": random_id("msg_"), "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        else:
            item = {"id": random_id("rs_"), "type": "reasoning", "summary": []}
        self._open = opened = _Item(item, self._take_index())
        out.append(self._emit({"type": "response.output_item.added", "output_index": opened.index, "item": dict(item)}))
        if kind == "message":
            out.append(self._emit({"type": "response.content_part.added", "item_id": item["id"], "output_index": opened.index,
                                   "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}))
        else:
            out.append(self._emit({"type": "response.reasoning_summary_part.added", "item_id": item["id"],
                                   "output_index": opened.index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}))
        return out

    def _close_open(self) -> list[UpstreamEvent]:
        opened, self._open = self._open, None
        if opened is None:
            return []
        item, text = opened.item, "".join(opened.parts)
        base = {"item_id": item["id"], "output_index": opened.index}
        if item["type"] == "message":
            part = {"type": "output_text", "text": text, "annotations": []}
            item.update(status="completed", content=[part])
            events = [self._emit({"type": "response.output_text.done", **base, "content_index": 0, "text": text}),
                      self._emit({"type": "response.content_part.done", **base, "content_index": 0, "part": part})]
        else:
            part = {"type": "summary_text", "text": text}
            item["summary"] = [part] if text else []
            events = [self._emit({"type": "response.reasoning_summary_text.done", **base, "summary_index": 0, "text": text}),
                      self._emit({"type": "response.reasoning_summary_part.done", **base, "summary_index": 0, "part": part})]
        return events + [self._done(item, opened.index)]

    def _done(self, item: dict[str, Any], index: int) -> UpstreamEvent:
        self._output.append(item)
        return self._emit({"type": "response.output_item.done", "output_index": index, "item": item})

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        echo = self._echo
        response = {
            "id": self.response_id, "object": "response", "created_at": self._created_at, "status": status,
            "background": False, "error": None, "incomplete_details": None, "instructions": echo.get("instructions"),
            "max_output_tokens": echo.get("max_output_tokens"), "model": self._model, "output": [],
            "parallel_tool_calls": echo.get("parallel_tool_calls", True), "previous_response_id": None,
            "reasoning": {"effort": (echo.get("reasoning") or {}).get("effort"), "summary": None}, "store": False,
            "temperature": echo.get("temperature"), "text": {"format": {"type": "text"}}, "tool_choice": echo.get("tool_choice", "auto"),
            "tools": echo.get("tools") or [], "top_p": echo.get("top_p"), "usage": None, "metadata": {},
        }  # fmt: skip
        response.update(extra)
        return response


def _custom_input(arguments: str) -> str:
    """A custom tool offered as a function: its ``{"input": "..."}`` argument, else the text as is."""
    try:
        value = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return value["input"]
    return arguments
