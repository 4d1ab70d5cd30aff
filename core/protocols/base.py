"""What every protocol translator shares: the contract each one follows (``Translator``), the
inbound request view, replies, client errors, and the one dispatch from Codex deltas to handlers
(``DELTA_HANDLERS``) that ``CollectedTurn`` and every ``DeltaStream`` use."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import orjson

from core.codex.catalog import ModelCatalog
from core.codex.errors import UpstreamError
from core.codex.events import (
    Delta,
    Failed,
    Finished,
    ImageGenerated,
    ReasoningDelta,
    ReasoningDone,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallDone,
    ToolCallStarted,
    Usage,
)
from core.settings import Settings
from core.turn.model import Prepared, UpstreamEvent

JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no"}


@dataclass(slots=True)
class ClientRequest:
    """A client's HTTP request as the host received it (mitmproxy flow or test harness)."""

    method: str
    path: str  # without the query string
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    client_addr: str = "127.0.0.1"
    trusted: bool = False  # the host vouched for the client (Ollama listener, proxy mode — README "Trust"): no proxy key needed

    def json(self) -> Any:
        """The body as JSON; raises ``BadRequest`` (``invalid_json``) when it is not."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            raise BadRequest("Malformed JSON request body", code="invalid_json") from None


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_HEADERS))


class ClientError(Exception):
    """A request we refuse before calling upstream; each protocol renders it in its own envelope."""

    status = 400
    kind = "invalid_request"
    default_code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param


class BadRequest(ClientError):
    status = 400
    kind = "invalid_request"
    default_code = "invalid_request"


class Unauthorized(ClientError):
    status = 401
    kind = "authentication"


class Forbidden(ClientError):
    status = 403
    kind = "permission"


class NotFound(ClientError):
    status = 404
    kind = "not_found"


class TooManyRequests(ClientError):
    """Refused for now: a client key's budget or concurrency. ``retry_after`` (seconds) becomes
    the ``Retry-After`` header (and Gemini's RetryInfo) when known."""

    status = 429
    kind = "rate_limit"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class TooLarge(ClientError):
    status = 413
    kind = "invalid_request"


Failure = ClientError | UpstreamError


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(payload), {**JSON_HEADERS, **(headers or {})})


def http_status(error: Failure) -> int:
    """The status a failure is answered with: its own, or 502 when that is no error status."""
    return error.status if 400 <= error.status < 600 else 502


def retry_headers(error: Failure) -> dict[str, str]:
    retry_after = getattr(error, "retry_after", None)
    return {"retry-after": str(max(1, round(retry_after)))} if retry_after else {}


_ID_ORIGIN = secrets.token_hex(4)  # this process's; a counter makes each id unique within it
_ID_COUNTER = itertools.count(secrets.randbelow(1 << 32))


def random_id(prefix: str, nbytes: int = 12) -> str:
    """A unique id for a response, message or request (not a secret: no system call per id)."""
    return f"{prefix}{_ID_ORIGIN}{next(_ID_COUNTER):0{max(2 * nbytes - 8, 8)}x}"


def now_seconds() -> int:
    return int(time.time())


def expect_object(value: Any, what: str = "Request body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def sampling_of(max_tokens: Any = None, temperature: Any = None, top_p: Any = None, stop: Any = None,
                thinking_budget: Any = None) -> dict[str, Any]:
    """A client's sampling settings in ``Turn.sampling``'s names, those that make sense only (the
    Codex backend ignores them; API-key providers get them)."""
    out: dict[str, Any] = {}
    for name, value in (("max_output_tokens", max_tokens), ("thinking_budget", thinking_budget)):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out[name] = value
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    if stops := [s for s in stops if isinstance(s, str) and s]:
        out["stop"] = stops
    return out


# --- the contract ------------------------------------------------------------------------------


class ClientStream(Protocol):
    """A protocol's ``StreamTranslator``: committed upstream events → the client's stream, incrementally."""

    content_type: str  # the stream's media type (SSE unless the protocol streams NDJSON or a JSON array)

    def feed(self, event: UpstreamEvent) -> bytes: ...  # one event → bytes to send (may be b"")

    def keepalive(self) -> bytes: ...  # something harmless to send while the upstream is silent

    def fail(self, error: Failure) -> bytes: ...  # after the stream began: the closing error frame (b"" once closed)


class Translator(Protocol):
    """What each protocol package (``openai_chat``, ``completions``, ``responses``, ``anthropic``, ``gemini``,
    ``ollama``) offers, with these names and signatures. All of it is pure: no I/O, no pipeline.

    A refused request raises ``ClientError`` from ``parse_request``; the caller renders it with
    the same package's ``render_error``. ``Prepared.context`` is the package's own context
    dataclass: the only thing ``render_response`` and ``StreamTranslator`` get besides the
    upstream turn."""

    def parse_request(self, request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Prepared: ...

    def render_response(self, collected: CollectedTurn, context: Any) -> Reply: ...

    StreamTranslator: Callable[[Any], ClientStream]  # a class: StreamTranslator(context)

    def render_error(self, error: Failure) -> Reply: ...


class TokenCounter(Translator, Protocol):
    """A protocol whose API counts tokens locally (Anthropic, Gemini): an estimate, no upstream
    call; refusals are raised as from ``parse_request``."""

    def count_tokens(self, request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Reply: ...


# --- one dispatch for Codex deltas ---------------------------------------------------------------

# Each delta type and the method that handles it, for every consumer of deltas (the stream
# translators and ``CollectedTurn``): a consumer defines the methods it cares about.
DELTA_HANDLERS: dict[type, str] = {
    TextDelta: "on_text",
    ReasoningDelta: "on_reasoning",
    ReasoningDone: "on_reasoning_done",
    ToolCallStarted: "on_tool_call_started",
    ToolCallArgsDelta: "on_tool_call_args",
    ToolCallDone: "on_tool_call",
    ImageGenerated: "on_image",
    Finished: "on_finished",
    Failed: "on_failed",
}

Handler = Callable[[Any, Any], Any]


def delta_dispatch(cls: type, default: Handler) -> dict[type, Handler]:
    """``{delta type: cls's handler}``, looked up once per class rather than per event; a delta
    ``cls`` has no method for goes to ``default``."""
    return {kind: getattr(cls, name, default) for kind, name in DELTA_HANDLERS.items()}


class DeltaStream:
    """Base of every protocol's ``StreamTranslator``. ``feed`` hands each of an event's deltas to
    the matching ``on_*`` method (see ``DELTA_HANDLERS``); a subclass overrides those it answers
    and ``error_frame``. A ``Failed`` delta closes the stream like ``fail`` does, and nothing
    follows a closing frame. (The Responses relay passes the backend's own events on, so it
    overrides ``feed`` and keeps the rest.)"""

    content_type: str = "text/event-stream"
    _dispatch: ClassVar[dict[type, Handler]]
    _done = False  # the closing frame (finish or error) was sent: nothing may follow it

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = delta_dispatch(cls, DeltaStream._ignore)

    def feed(self, event: UpstreamEvent) -> bytes:
        deltas = event.deltas
        if len(deltas) == 1:  # the usual case: no list to build and join
            delta = deltas[0]
            return self._dispatch[type(delta)](self, delta)
        if not deltas:
            return b""
        dispatch = self._dispatch
        return b"".join([dispatch[type(delta)](self, delta) for delta in deltas])

    def _ignore(self, delta: Delta) -> bytes:
        return b""

    def on_failed(self, delta: Failed) -> bytes:
        return self.fail(delta.error)

    def keepalive(self) -> bytes:
        return b": ping\n\n"  # an SSE comment: clients skip it

    def fail(self, error: Failure) -> bytes:
        if self._done:
            return b""
        self._done = True
        return self.error_frame(error)

    def error_frame(self, error: Failure) -> bytes:
        """The protocol's closing error frame for a failure after the stream began."""
        raise NotImplementedError


# --- non-streamed answers ------------------------------------------------------------------------


@dataclass(slots=True)
class CollectedTurn:
    """A whole Codex turn gathered from its deltas, for non-streaming answers."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    reasoning_items: list[ReasoningDone] = field(default_factory=list)
    tool_calls: list[ToolCallDone] = field(default_factory=list)
    images: list[ImageGenerated] = field(default_factory=list)
    finish: Finished | None = None
    usage: Usage | None = None
    response_id: str | None = None
    response: dict[str, Any] | None = None  # the terminal event's response object
    output_items: list[dict[str, Any]] = field(default_factory=list)
    error: UpstreamError | None = None  # the turn failed after it had started
    first_output_ns: int | None = None  # time.monotonic_ns() of the first output (Ollama's eval timings)

    def add(self, deltas: list[Delta]) -> None:
        dispatch = _COLLECT
        for delta in deltas:
            if self.first_output_ns is None and not isinstance(delta, (Finished, Failed)):
                self.first_output_ns = time.monotonic_ns()
            dispatch[type(delta)](self, delta)

    def on_text(self, delta: TextDelta) -> None:
        self.text.append(delta.text)

    def on_reasoning(self, delta: ReasoningDelta) -> None:
        self.reasoning.append(delta.text)

    def on_reasoning_done(self, delta: ReasoningDone) -> None:
        self.reasoning_items.append(delta)

    def on_tool_call(self, delta: ToolCallDone) -> None:
        self.tool_calls.append(delta)

    def on_image(self, delta: ImageGenerated) -> None:
        self.images.append(delta)

    def on_finished(self, delta: Finished) -> None:
        self.finish = delta
        self.usage = delta.usage

    def on_failed(self, delta: Failed) -> None:
        self.error = delta.error

    def finalize(self, parser: Any) -> CollectedTurn:
        """Copy what only the stream parser knows (ids, output items) once the turn is over."""
        self.response_id = parser.response_id
        self.response = parser.final_response
        self.output_items = parser.output_items
        self.usage = self.usage or parser.usage
        return self

    @property
    def full_text(self) -> str:
        return "".join(self.text)

    @property
    def full_reasoning(self) -> str:
        return "".join(self.reasoning)


def _skip(collected: CollectedTurn, delta: Delta) -> None:
    """Deltas a whole turn does not keep (tool-call starts and argument pieces: the done event
    carries the whole call)."""


_COLLECT = delta_dispatch(CollectedTurn, _skip)
