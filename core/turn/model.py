"""The typed values that travel the pipeline: a translated ``Turn``, each ``UpstreamEvent`` the
backend sends, and the ``Prepared`` pair a protocol translator hands over (the turn and what the
protocol needs to render the answer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
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

    def events(self, parser: CodexStreamParser) -> AsyncIterator[UpstreamEvent]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class Prepared:
    """A translated request ready for the pipeline, with what its protocol needs to answer."""

    turn: Turn | None  # None: answered without a turn (an Ollama model load)
    context: Any  # protocol-specific render context
