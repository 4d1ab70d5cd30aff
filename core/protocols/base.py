"""What every protocol translator shares: the inbound request view, replies, client errors."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from core.codex.errors import UpstreamError
from core.codex.events import Delta, Failed, Finished, ImageGenerated, ReasoningDelta, ReasoningDone, TextDelta, ToolCallDone, Usage

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
        """The body as JSON; raises ``BadRequest`` with the seed's wording when it is not."""
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


class NotFound(ClientError):
    status = 404
    kind = "not_found"


class TooLarge(ClientError):
    status = 413
    kind = "invalid_request"


Failure = ClientError | UpstreamError


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(payload), {**JSON_HEADERS, **(headers or {})})


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
        for delta in deltas:
            if self.first_output_ns is None and not isinstance(delta, (Finished, Failed)):
                self.first_output_ns = time.monotonic_ns()
            if isinstance(delta, TextDelta):
                self.text.append(delta.text)
            elif isinstance(delta, ReasoningDelta):
                self.reasoning.append(delta.text)
            elif isinstance(delta, ReasoningDone):
                self.reasoning_items.append(delta)
            elif isinstance(delta, ToolCallDone):
                self.tool_calls.append(delta)
            elif isinstance(delta, ImageGenerated):
                self.images.append(delta)
            elif isinstance(delta, Finished):
                self.finish = delta
                self.usage = delta.usage
            elif isinstance(delta, Failed):
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


class StreamTranslator(Protocol):
    """Turns committed upstream events into the client's stream, incrementally."""

    content_type: str

    def feed(self, event: Any) -> bytes: ...  # one UpstreamEvent → bytes to send (may be b"")

    def keepalive(self) -> bytes: ...

    def fail(self, error: Failure) -> bytes: ...  # after the stream began: the closing error frame
