"""Scripted responses: the scenario dict and what a turn is made of. Ready-made faults (the
backend's failure answers) are in codex_fake/faults.py, the event generator in codex_fake/turn.py.

A scenario (one per ``POST /codex/responses``) says *what* the model answers; ``Turn``
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
* ``preset``: the name of a constructor in codex_fake/faults.py, its keyword arguments alongside.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

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
