"""Scripted responses: the scenario dict, ready-made faults (the backend's failure answers), and
the event generator.

A scenario (one per ``POST /codex/responses``) says *what* the model answers; :class:`Turn`
turns it into the Responses-stream event sequence the real backend sends (items through
``output_item.added``/``done``, ``sequence_number`` increasing, no ``[DONE]``). The transport
(SSE or WebSocket) only frames and paces what the generator yields.

Scenario keys (all optional; an empty dict or no scenario means the default answer):

* content: ``text`` (str split into word deltas, or a list of exact chunks), ``reasoning`` (summary
  text; summary events only if the request asked for ``reasoning.summary``), ``tool_calls``
  (``[{"name", "arguments": str|dict, "call_id"?}]``, several = parallel), ``custom_tool_calls``
  (``[{"name", "input", "call_id"?}]``), ``web_search`` (bool or ``{"query"}``), ``image``
  (``{"result", "revised_prompt", "partial"?, "size"?}``), ``usage`` (merged over the computed one),
  ``completed_output`` (repeat the items in ``response.completed.output``).
* endings: ``incomplete`` (reason), ``fail`` (``{"code","message"}``) + ``fail_after`` (output
  events first), ``error_event`` (bare ``error`` event) + ``error_after``, ``http_error``
  (``{"status","body","headers"}`` before any SSE), ``disconnect_after`` (events, then drop the
  connection; ``disconnect_mode: "eof"`` ends the body cleanly instead), ``json_body`` (a 200 JSON
  body), ``empty`` (completed with no items and no output tokens), ``refresh_error`` (faults only).
* pacing and extras: ``ttfb_ms``, ``ttft_ms``, ``event_delay_ms``, ``headers``.
* ``preset``: the name of a constructor below, its keyword arguments alongside.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from orjson import dumps

from codex_fake.tokens import seal_blob

SCENARIO_KEYS = frozenset(
    {
        "text", "reasoning", "tool_calls", "custom_tool_calls", "web_search", "image", "usage",
        "incomplete", "fail", "fail_after", "error_event", "error_after", "http_error",
        "disconnect_after", "disconnect_mode", "json_body", "empty", "ttfb_ms", "ttft_ms",
        "event_delay_ms", "completed_output", "headers", "refresh_error", "preset",
    }
)  # fmt: skip

# 1x1 transparent PNG: a valid image for the image_generation_call default.
TINY_PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
DEFAULT_TEXT = "Hello from the fake Codex backend."
DEFAULT_SUMMARY = "Thinking about the request."
_LOREM = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
_WORDS = re.compile(r"\s*\S+")


class Pause:
    """Yielded by a turn when the transport should wait (time-to-first-token)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Disconnect:
    """Yielded when the scripted stream must stop without a terminal event."""

    __slots__ = ("mode",)

    def __init__(self, mode: str) -> None:
        self.mode = mode  # "close": drop the TCP connection; "eof": end the body cleanly


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def split_words(text: str) -> list[str]:
    """Word-sized deltas (leading whitespace glued to the word, as tokenised streams look)."""
    parts = _WORDS.findall(text)
    tail = text[sum(map(len, parts)) :]
    if tail:
        if parts:
            parts[-1] += tail
        else:
            parts = [tail]
    return parts


def split_pieces(text: str, minimum: int = 2, size: int = 16) -> list[str]:
    """At least ``minimum`` pieces (argument deltas must arrive in several parts)."""
    if not text:
        return []
    count = max(minimum, math.ceil(len(text) / size))
    step = max(1, math.ceil(len(text) / count))
    pieces = [text[i : i + step] for i in range(0, len(text), step)]
    while len(pieces) < minimum:
        pieces.append("")
    return pieces


_BENCH_CACHE: dict[int, list[str]] = {}


def bench_chunks(count: int) -> list[str]:
    """Exactly ``count`` deltas of 8 characters (benchmark mode)."""
    chunks = _BENCH_CACHE.get(count)
    if chunks is None:
        source = _LOREM * (count * 8 // len(_LOREM) + 2)
        chunks = [source[i * 8 : i * 8 + 8] for i in range(count)]
        if len(_BENCH_CACHE) < 64:
            _BENCH_CACHE[count] = chunks
    return chunks


def tokens_for(text_len: int) -> int:
    return max(1, text_len // 4) if text_len else 0


def check_scenario(scenario: Any) -> dict[str, Any]:
    """Resolve presets and reject unknown keys early, so a typo fails in the test, not silently."""
    if isinstance(scenario, str):
        return preset(scenario)
    if not isinstance(scenario, dict):
        raise ValueError(f"scenario must be a dict, got {type(scenario).__name__}")
    if "preset" in scenario:
        args = {k: v for k, v in scenario.items() if k != "preset"}
        return preset(scenario["preset"], **args)
    unknown = set(scenario) - SCENARIO_KEYS
    if unknown:
        raise ValueError(f"unknown scenario keys: {sorted(unknown)}")
    return scenario


# --- the request facts a turn needs -----------------------------------------------------------------


@dataclass(slots=True)
class TurnRequest:
    """What the generator needs to know about the validated request."""

    model: str
    account: str
    input_tokens: int
    cached_tokens: int = 0
    user_text: str | None = None
    reasoning: dict[str, Any] | None = None
    include_encrypted: bool = False
    tools: list[Any] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    service_tier: str | None = None
    text_param: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    previous_response_id: str | None = None
    response_id: str = ""
    created_at: int = 0

    def __post_init__(self) -> None:
        self.response_id = self.response_id or new_id("resp")
        self.created_at = self.created_at or int(time.time())

    @property
    def wants_summary(self) -> bool:
        return bool(self.reasoning and self.reasoning.get("summary") not in (None, "none"))


@dataclass(slots=True)
class TurnKnobs:
    """Server-wide pacing and defaults (FakeCodex.configure) a scenario may override."""

    ttfb_ms: float = 0
    ttft_ms: float = 0
    event_delay_ms: float = 0
    events: int | None = None
    stamp_events: bool = False


class Turn:
    """One scripted answer: error paths as attributes, the stream as :meth:`events`."""

    def __init__(self, req: TurnRequest, scenario: dict[str, Any] | None, knobs: TurnKnobs) -> None:
        sc = scenario or {}
        self.req = req
        self.sc = sc
        self.http_error: dict[str, Any] | None = sc.get("http_error")
        self.json_body: Any = sc.get("json_body")
        self.headers: dict[str, str] = {str(k): str(v) for k, v in (sc.get("headers") or {}).items()}
        self.ttfb = float(sc.get("ttfb_ms", knobs.ttfb_ms) or 0) / 1000
        self.ttft = float(sc.get("ttft_ms", knobs.ttft_ms) or 0) / 1000
        self.event_delay = float(sc.get("event_delay_ms", knobs.event_delay_ms) or 0) / 1000
        self.bench_events = knobs.events
        self.stamp_events = knobs.stamp_events
        self.output_items: list[dict[str, Any]] = []  # completed items, for WS history
        self.status = "in_progress"
        self.usage: dict[str, Any] | None = None
        self._seq = 0
        self._text_chars = 0
        self._reasoning_chars = 0
        self._tool_usage: dict[str, Any] = {}

    # -- response objects --------------------------------------------------------------------------

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        r = self.req
        reasoning = r.reasoning or {}
        obj = {
            "id": r.response_id,
            "object": "response",
            "created_at": r.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": None,
            "model": r.model,
            "output": [],
            "parallel_tool_calls": r.parallel_tool_calls,
            "previous_response_id": r.previous_response_id,
            "prompt_cache_key": r.prompt_cache_key,
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": r.service_tier or "auto",
            "store": False,
            "text": r.text_param or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": r.tool_choice,
            "tools": r.tools,
            "usage": None,
            "metadata": {},
        }
        obj.update(extra)
        return obj

    def _final_usage(self) -> dict[str, Any]:
        r = self.req
        if self.sc.get("empty"):
            out_tokens = reasoning_tokens = 0
        else:
            reasoning_tokens = tokens_for(self._reasoning_chars)
            out_tokens = tokens_for(self._text_chars) + reasoning_tokens
        usage: dict[str, Any] = {
            "input_tokens": r.input_tokens,
            "input_tokens_details": {"cached_tokens": r.cached_tokens},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": r.input_tokens + out_tokens,
        }
        override = self.sc.get("usage") or {}
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(usage.get(key), dict):
                usage[key] = {**usage[key], **value}
            else:
                usage[key] = value
        if "total_tokens" not in override:
            usage["total_tokens"] = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
        return usage

    # -- the stream --------------------------------------------------------------------------------

    def events(self) -> Iterator[dict[str, Any] | Pause | Disconnect]:
        """Events with sequence numbers, plus pacing/disconnect markers for the transport."""
        sc = self.sc
        disconnect_after = sc.get("disconnect_after")
        disconnect = Disconnect(str(sc.get("disconnect_mode") or "close"))
        fail = sc.get("fail")
        fail_after = int(sc.get("fail_after") or 0) if fail else None
        error_event = sc.get("error_event")
        error_after = sc.get("error_after") if error_event is not None else None
        sent = 0

        def stamp(event: dict[str, Any]) -> dict[str, Any]:
            event["sequence_number"] = self._seq
            self._seq += 1
            return event

        if error_event is not None and error_after is None:
            if disconnect_after == 0:
                yield disconnect
                return
            yield stamp(self._error_event(error_event))
            self.status = "error"
            return

        preamble = [
            {"type": "response.created", "sequence_number": 0, "response": self._response("in_progress")},
            {"type": "response.in_progress", "sequence_number": 0, "response": self._response("in_progress")},
        ]
        for event in preamble:
            if disconnect_after is not None and sent >= int(disconnect_after):
                yield disconnect
                return
            yield stamp(event)
            sent += 1
        if self.ttft:
            yield Pause(self.ttft)

        produced = 0
        for event in self._output_events():
            if fail_after is not None and produced >= fail_after:
                break
            if error_after is not None and produced >= int(error_after):
                break
            if disconnect_after is not None and sent >= int(disconnect_after):
                yield disconnect
                return
            yield stamp(event)
            sent += 1
            produced += 1

        if disconnect_after is not None and sent >= int(disconnect_after):
            yield disconnect
            return
        if error_event is not None:  # scripted with error_after: it wins over fail/complete
            yield stamp(self._error_event(error_event))
            self.status = "error"
            return
        if fail is not None:
            self.status = "failed"
            error = {"code": fail.get("code", "server_error"), "message": fail.get("message", "An error occurred.")}
            yield stamp(
                {
                    "type": "response.failed",
                    "sequence_number": 0,
                    "response": self._response("failed", error=error, usage=None),
                }
            )
            return
        self.usage = self._final_usage()
        output = list(self.output_items) if sc.get("completed_output") else []
        if sc.get("incomplete"):
            self.status = "incomplete"
            yield stamp(
                {
                    "type": "response.incomplete",
                    "sequence_number": 0,
                    "response": self._response(
                        "incomplete",
                        incomplete_details={"reason": sc["incomplete"]},
                        usage=self.usage,
                        output=output,
                    ),
                }
            )
            return
        self.status = "completed"
        extra: dict[str, Any] = {"usage": self.usage, "output": output}
        if self._tool_usage:
            extra["tool_usage"] = self._tool_usage
        yield stamp({"type": "response.completed", "sequence_number": 0, "response": self._response("completed", **extra)})

    @staticmethod
    def _error_event(error: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "error", "sequence_number": 0, "code": None, "message": "", "param": None}
        event.update(error)
        event["type"] = "error"
        return event

    def _plan_text(self) -> list[str] | None:
        """The answer's text deltas, or None when the scenario has no message item."""
        sc, r = self.sc, self.req
        if sc.get("empty"):
            return None
        text = sc.get("text")
        if text is not None:
            chunks = [str(c) for c in text] if isinstance(text, (list, tuple)) else split_words(str(text))
            return chunks or None
        if sc.get("tool_calls") or sc.get("custom_tool_calls") or sc.get("image"):
            return None
        if self.bench_events:
            return bench_chunks(int(self.bench_events))
        if r.user_text:
            return split_words(f"You said: {r.user_text[:200]}")
        return split_words(DEFAULT_TEXT)

    def _output_events(self) -> Iterator[dict[str, Any]]:
        sc = self.sc
        if sc.get("empty"):
            return
        index = 0
        reasoning = sc.get("reasoning")
        scripted_items = sc.get("tool_calls") or sc.get("custom_tool_calls") or sc.get("image")
        default_answer = sc.get("text") is None and not scripted_items
        if reasoning is None and default_answer and self.req.wants_summary:
            reasoning = DEFAULT_SUMMARY
        if reasoning is not None:
            yield from self._reasoning_item(index, str(reasoning))
            index += 1
        if sc.get("web_search"):
            yield from self._web_search_item(index, sc["web_search"])
            index += 1
        if sc.get("image"):
            yield from self._image_item(index, sc["image"] if isinstance(sc["image"], dict) else {})
            index += 1
        chunks = self._plan_text()
        if chunks is not None:
            yield from self._message_item(index, chunks, cite=bool(sc.get("web_search")))
            index += 1
        for call in sc.get("custom_tool_calls") or []:
            yield from self._custom_call_item(index, call)
            index += 1
        calls = sc.get("tool_calls") or []
        if calls:
            yield from self._function_calls(index, calls)

    def _reasoning_item(self, index: int, text: str) -> Iterator[dict[str, Any]]:
        item_id = new_id("rs")
        self._reasoning_chars += max(len(text), 64)
        yield {
            "type": "response.output_item.added",
            "sequence_number": 0,
            "output_index": index,
            "item": {"id": item_id, "type": "reasoning", "summary": []},
        }
        summary: list[dict[str, str]] = []
        if self.req.wants_summary and text:
            base = {"item_id": item_id, "output_index": index, "summary_index": 0}
            yield {
                "type": "response.reasoning_summary_part.added",
                "sequence_number": 0,
                **base,
                "part": {"type": "summary_text", "text": ""},
            }
            for delta in split_words(text):
                yield {"type": "response.reasoning_summary_text.delta", "sequence_number": 0, **base, "delta": delta}
            yield {"type": "response.reasoning_summary_text.done", "sequence_number": 0, **base, "text": text}
            part = {"type": "summary_text", "text": text}
            yield {"type": "response.reasoning_summary_part.done", "sequence_number": 0, **base, "part": part}
            summary = [part]
        item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": summary}
        if self.req.include_encrypted:
            item["encrypted_content"] = seal_blob(self.req.account, "reasoning")
        self.output_items.append(item)
        yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}

    def _web_search_item(self, index: int, spec: Any) -> Iterator[dict[str, Any]]:
        item_id = new_id("ws")
        query = spec.get("query") if isinstance(spec, dict) else None
        query = query or (self.req.user_text or "fake search")[:100]
        yield {
            "type": "response.output_item.added",
            "sequence_number": 0,
            "output_index": index,
            "item": {"id": item_id, "type": "web_search_call", "status": "in_progress"},
        }
        for phase in ("in_progress", "searching", "completed"):
            yield {
                "type": f"response.web_search_call.{phase}",
                "sequence_number": 0,
                "item_id": item_id,
                "output_index": index,
            }
        item = {
            "id": item_id,
            "type": "web_search_call",
            "status": "completed",
            "action": {"type": "search", "query": query},
        }
        self.output_items.append(item)
        self._tool_usage["web_search"] = {"num_requests": 1}
        yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}

    def _image_item(self, index: int, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
        item_id = new_id("ig")
        yield {
            "type": "response.output_item.added",
            "sequence_number": 0,
            "output_index": index,
            "item": {"id": item_id, "type": "image_generation_call", "status": "in_progress"},
        }
        base = {"item_id": item_id, "output_index": index}
        yield {"type": "response.image_generation_call.in_progress", "sequence_number": 0, **base}
        yield {"type": "response.image_generation_call.generating", "sequence_number": 0, **base}
        if spec.get("partial"):
            yield {
                "type": "response.image_generation_call.partial_image",
                "sequence_number": 0,
                **base,
                "partial_image_index": 0,
                "partial_image_b64": spec["partial"],
            }
        item = {
            "id": item_id,
            "type": "image_generation_call",
            "status": "completed",
            "background": "opaque",
            "output_format": spec.get("output_format", "png"),
            "quality": "auto",
            "size": spec.get("size", "1024x1024"),
            "result": spec.get("result") or TINY_PNG_B64,
            "revised_prompt": spec.get("revised_prompt") or (self.req.user_text or "an image"),
        }
        self.output_items.append(item)
        self._tool_usage["image_gen"] = {"input_tokens": 50, "output_tokens": 1056, "total_tokens": 1106}
        yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}

    def _message_item(self, index: int, chunks: list[str], cite: bool) -> Iterator[dict[str, Any]]:
        item_id = new_id("msg")
        base = {"item_id": item_id, "output_index": index, "content_index": 0}
        yield {
            "type": "response.output_item.added",
            "sequence_number": 0,
            "output_index": index,
            "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []},
        }
        yield {
            "type": "response.content_part.added",
            "sequence_number": 0,
            **base,
            "part": {"type": "output_text", "text": "", "annotations": []},
        }
        for delta in chunks:
            yield {"type": "response.output_text.delta", "sequence_number": 0, **base, "delta": delta, "logprobs": []}
        text = "".join(chunks)
        self._text_chars += len(text)
        annotations: list[dict[str, Any]] = []
        if cite:
            annotation = {
                "type": "url_citation",
                "start_index": 0,
                "end_index": len(text),
                "url": "https://example.com/fake-search-result",
                "title": "Fake search result",
            }
            annotations.append(annotation)
            yield {
                "type": "response.output_text.annotation.added",
                "sequence_number": 0,
                **base,
                "annotation_index": 0,
                "annotation": annotation,
            }
        yield {"type": "response.output_text.done", "sequence_number": 0, **base, "text": text, "logprobs": []}
        part = {"type": "output_text", "text": text, "annotations": annotations}
        yield {"type": "response.content_part.done", "sequence_number": 0, **base, "part": part}
        status = "incomplete" if self.sc.get("incomplete") else "completed"
        item = {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": [part]}
        self.output_items.append(item)
        yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}

    def _custom_call_item(self, index: int, call: dict[str, Any]) -> Iterator[dict[str, Any]]:
        item_id = new_id("ctc")
        call_id = call.get("call_id") or new_id("call")
        name = call.get("name", "apply_patch")
        text = str(call.get("input", ""))
        self._text_chars += len(text)
        added = {
            "id": item_id,
            "type": "custom_tool_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "input": "",
        }
        yield {"type": "response.output_item.added", "sequence_number": 0, "output_index": index, "item": added}
        base = {"item_id": item_id, "output_index": index}
        for delta in split_pieces(text):
            yield {"type": "response.custom_tool_call_input.delta", "sequence_number": 0, **base, "delta": delta}
        yield {"type": "response.custom_tool_call_input.done", "sequence_number": 0, **base, "input": text}
        item = {**added, "status": "completed", "input": text}
        self.output_items.append(item)
        yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}

    def _function_calls(self, first_index: int, calls: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """All items added first, then argument deltas interleaved (parallel calls stress indexing)."""
        plans = []
        for offset, call in enumerate(calls):
            args = call.get("arguments", "{}")
            args = args if isinstance(args, str) else dumps(args).decode()
            self._text_chars += len(args)
            added = {
                "id": new_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": call.get("call_id") or new_id("call"),
                "name": call.get("name", "tool"),
                "arguments": "",
            }
            plans.append((first_index + offset, added, args, split_pieces(args)))
        for index, added, _args, _pieces in plans:
            yield {"type": "response.output_item.added", "sequence_number": 0, "output_index": index, "item": added}
        longest = max(len(p[3]) for p in plans)
        for step in range(longest):
            for index, added, _args, pieces in plans:
                if step < len(pieces):
                    yield {
                        "type": "response.function_call_arguments.delta",
                        "sequence_number": 0,
                        "item_id": added["id"],
                        "output_index": index,
                        "delta": pieces[step],
                    }
        for index, added, args, _pieces in plans:
            yield {
                "type": "response.function_call_arguments.done",
                "sequence_number": 0,
                "item_id": added["id"],
                "output_index": index,
                "arguments": args,
            }
            item = {**added, "status": "completed", "arguments": args}
            self.output_items.append(item)
            yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}


# --- ready-made faults: the backend's failure answers, as it sends them -----------------------------


def _rate_headers(primary: float, secondary: float, resets_in: int, now: float) -> dict[str, str]:
    return {
        "x-codex-primary-used-percent": f"{primary:.1f}",
        "x-codex-primary-window-minutes": "300",
        "x-codex-primary-reset-at": str(int(now + resets_in)),
        "x-codex-secondary-used-percent": f"{secondary:.1f}",
        "x-codex-secondary-window-minutes": "10080",
        "x-codex-secondary-reset-at": str(int(now + 604800)),
        "x-codex-credits-has-credits": "false",
        "x-codex-credits-unlimited": "false",
        "x-codex-credits-balance": "0",
        "x-codex-active-limit": "codex",
    }


def usage_limit_429(resets_in: int = 3600, plan_type: str = "plus", secondary: bool = False) -> dict[str, Any]:
    """Plan quota exhausted: 429 ``usage_limit_reached`` with both reset fields and 100% headers."""
    now = time.time()
    headers = _rate_headers(30.0 if secondary else 100.0, 100.0 if secondary else 40.0, resets_in, now)
    if secondary:
        headers["x-codex-secondary-reset-at"] = str(int(now + resets_in))
    headers["x-codex-rate-limit-reached-type"] = "secondary" if secondary else "primary"
    body = {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": plan_type,
            "resets_at": int(now + resets_in),
            "resets_in_seconds": int(resets_in),
        }
    }
    return {"http_error": {"status": 429, "body": body, "headers": headers}}


def rate_limited_429(retry_in: float = 2.5) -> dict[str, Any]:
    """Transient rate limit (not a quota): ``rate_limit_exceeded`` with a try-again hint."""
    body = {
        "error": {
            "type": "rate_limit_error",
            "code": "rate_limit_exceeded",
            "message": f"Rate limit reached. Please try again in {retry_in}s.",
        }
    }
    return {"http_error": {"status": 429, "body": body, "headers": {}}}


def usage_not_included_429(plan_type: str = "free") -> dict[str, Any]:
    error = {"type": "usage_not_included", "message": "Your plan does not include Codex.", "plan_type": plan_type}
    body = {"error": error}
    return {"http_error": {"status": 429, "body": body, "headers": {}}}


def token_expired_401() -> dict[str, Any]:
    """The OpenAI-style expired-token 401, with the auth-error headers codex-rs reads."""
    body = {
        "error": {
            "message": "Provided authentication token is expired. Please try signing in again.",
            "type": "invalid_request_error",
            "code": "token_expired",
            "param": None,
        }
    }
    headers = {
        "x-openai-authorization-error": "token_expired",
        "x-error-json": "eyJlcnJvciI6eyJjb2RlIjoidG9rZW5fZXhwaXJlZCJ9fQ==",
    }
    return {"http_error": {"status": 401, "body": body, "headers": headers}}


def deactivated_401() -> dict[str, Any]:
    body = {
        "error": {
            "message": "Your OpenAI account has been deactivated, please check your email for more information.",
            "type": "invalid_request_error",
            "code": "account_deactivated",
            "param": None,
        }
    }
    return {"http_error": {"status": 401, "body": body, "headers": {}}}


def ban_403(message: str = "Your access to Codex has been suspended for violating our usage policies.") -> dict[str, Any]:
    """A JSON 403: the account is banned or flagged (rotate away, mark banned)."""
    return {"http_error": {"status": 403, "body": {"detail": message}, "headers": {}}}


CLOUDFLARE_HTML = (
    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>"
    "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\"></head>"
    "<body><div class=\"main-wrapper\" role=\"main\"><div class=\"main-content\">"
    "<h1>chatgpt.com</h1><p>Verifying you are human. This may take a few seconds.</p>"
    "</div></div></body></html>"
)


def cloudflare_403() -> dict[str, Any]:
    """A Cloudflare challenge page: HTML body and ``cf-mitigated: challenge`` — not a ban."""
    headers = {
        "content-type": "text/html; charset=UTF-8",
        "cf-mitigated": "challenge",
        "cf-ray": f"{secrets.token_hex(8)}-AMS",
        "server": "cloudflare",
    }
    return {"http_error": {"status": 403, "body": CLOUDFLARE_HTML, "headers": headers}}


def empty_404() -> dict[str, Any]:
    """Cloudflare's stealth path block: 404 with an empty body."""
    return {"http_error": {"status": 404, "body": "", "headers": {"server": "cloudflare"}}}


def payment_402() -> dict[str, Any]:
    return {"http_error": {"status": 402, "body": {"detail": "Payment required"}, "headers": {}}}


def overloaded_503() -> dict[str, Any]:
    message = "The server is overloaded. Please try again later."
    body = {"error": {"code": "server_is_overloaded", "message": message, "type": "server_error"}}
    return {"http_error": {"status": 503, "body": body, "headers": {}}}


def server_error_500() -> dict[str, Any]:
    body = {"error": {"code": "server_error", "message": "The server had an internal error", "type": "server_error"}}
    return {"http_error": {"status": 500, "body": body, "headers": {}}}


def context_length_failed(after: int = 0) -> dict[str, Any]:
    """In-stream ``response.failed`` with ``context_length_exceeded`` (after ``after`` output events)."""
    fail = {
        "code": "context_length_exceeded",
        "message": "Your input exceeds the context window of this model. Please adjust your input and try again.",
    }
    return {"fail": fail, "fail_after": after}


def failed(
    code: str = "server_error", message: str = "An error occurred while processing your request.", after: int = 0
) -> dict[str, Any]:
    return {"fail": {"code": code, "message": message}, "fail_after": after}


def error_event(
    code: str = "server_error", message: str = "An error occurred.", after: int | None = None
) -> dict[str, Any]:
    """A bare SSE ``error`` event (first, or after ``after`` output events)."""
    sc: dict[str, Any] = {"error_event": {"code": code, "message": message, "param": None}}
    if after is not None:
        sc["error_after"] = after
    return sc


def incomplete(reason: str = "max_output_tokens", text: str | None = "This answer was cut") -> dict[str, Any]:
    sc: dict[str, Any] = {"incomplete": reason}
    if text is not None:
        sc["text"] = text
    return sc


def premature_close(n: int = 3, mode: str = "close") -> dict[str, Any]:
    """Stop after ``n`` events with no terminal event (``mode='eof'`` ends the body cleanly)."""
    return {"disconnect_after": n, "disconnect_mode": mode}


def json_instead_of_sse(body: Any = None) -> dict[str, Any]:
    """A 200 whose body is JSON, not SSE (codex-proxy reports ``non_sse_response``)."""
    return {"json_body": body if body is not None else {"detail": "Unexpected JSON response"}}


def empty_completion() -> dict[str, Any]:
    return {"empty": True}


def refresh_error(status: int = 401, code: str = "refresh_token_expired", message: str | None = None) -> dict[str, Any]:
    """A fault for the account's refresh grants only (``fault(account, refresh_error())``)."""
    body = {"error": {"code": code, "message": message or f"Refresh failed: {code}"}}
    return {"refresh_error": {"status": status, "body": body}}


PRESETS: dict[str, Callable[..., dict[str, Any]]] = {
    f.__name__: f
    for f in (
        usage_limit_429, rate_limited_429, usage_not_included_429, token_expired_401, deactivated_401,
        ban_403, cloudflare_403, empty_404, payment_402, overloaded_503, server_error_500,
        context_length_failed, failed, error_event, incomplete, premature_close, json_instead_of_sse,
        empty_completion, refresh_error,
    )
}  # fmt: skip


def preset(name: str, **kwargs: Any) -> dict[str, Any]:
    """A ready-made scenario by name (lets HTTP control clients say ``"usage_limit_429"``)."""
    try:
        return PRESETS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None
