"""The typed values that travel the pipeline: a translated ``Turn``, each ``UpstreamEvent`` the
backend sends, and the ``Prepared`` pair a protocol translator hands over (the turn and what the
protocol needs to render the answer)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from core.codex.catalog import ResolvedModel
from core.codex.events import CodexStreamParser, Delta


@dataclass(slots=True)
class Turn:
    """One client request, translated to the Codex format and not yet bound to an account."""

    protocol: str
    body: dict[str, Any]
    model: ResolvedModel
    stream: bool
    conversation_key: str | None = None
    forwarded_headers: dict[str, str] = field(default_factory=dict)
    # What the Codex backend refuses but an API-key provider takes: ``max_output_tokens``,
    # ``temperature``, ``top_p``, ``stop`` (a list) and ``thinking_budget``, as the client gave them.
    sampling: dict[str, Any] = field(default_factory=dict)
    previous_response_id: str | None = None  # Responses: the response this turn continues
    history: list[Any] | None = None  # that response's conversation, when it must be sent in full
    keep_chain: bool = False  # Responses without store=false: the client may continue this turn


@dataclass(slots=True)
class UpstreamEvent:
    name: str
    data: dict[str, Any]
    raw: bytes  # the event's data bytes exactly as the backend sent them
    deltas: list[Delta] = field(default_factory=list)  # what the shared parser made of it


def disconnected_event(detail: str = "") -> UpstreamEvent:
    message = "Upstream stream closed before response.completed" + (f": {detail}" if detail else "")
    data = {"type": "error", "error": {"type": "server_error", "code": "stream_disconnected", "message": message}}
    return UpstreamEvent("error", data, orjson.dumps(data))


class Upstream(Protocol):
    """One turn's answer as it comes in, over whichever transport: the answer's headers, its
    decoded events (each run through ``parser``), and ``aclose()`` to stop it."""

    headers: dict[str, str]

    def events(self, parser: CodexStreamParser) -> AsyncGenerator[UpstreamEvent, None]: ...

    async def aclose(self) -> None: ...


def decode_event(name: str, raw: bytes) -> UpstreamEvent | None:
    """One SSE frame's data as an event (None for a non-object); bad JSON becomes an error event."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = {"type": "error", "error": {"code": "invalid_event", "message": raw[:500].decode("utf-8", "replace")}}
        return UpstreamEvent("error", data, orjson.dumps(data))
    if not isinstance(data, dict):
        return None
    return UpstreamEvent(name or data.get("type", ""), data, raw)


@dataclass(slots=True)
class Prepared:
    """A translated request ready for the pipeline, with what its protocol needs to answer."""

    turn: Turn | None  # None: answered without a turn (an Ollama model load)
    context: Any  # protocol-specific render context
