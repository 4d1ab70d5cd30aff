"""One parser for the Codex event stream, shared by every protocol translator.

``CodexStreamParser.feed`` turns a raw upstream event into protocol-neutral deltas (text, reasoning,
tool calls, the terminal state). It also keeps what a non-streaming answer needs: the response id,
the authoritative output items (``response.output_item.done``) and usage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.codex.errors import UpstreamError, classify_event


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0  # includes cached tokens
    output_tokens: int = 0  # includes reasoning tokens
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    @classmethod
    def from_response(cls, usage: Any) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        in_details = usage.get("input_tokens_details") or {}
        out_details = usage.get("output_tokens_details") or {}
        cached = in_details.get("cached_tokens")
        reasoning = out_details.get("reasoning_tokens")
        return cls(
            input_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            cached_tokens=cached if isinstance(cached, int) else None,
            reasoning_tokens=reasoning if isinstance(reasoning, int) else None,
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        return max(0, self.input_tokens - (self.cached_tokens or 0))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


# --- deltas --------------------------------------------------------------------------------------


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    text: str


@dataclass(slots=True)
class ReasoningDone:
    """A finished reasoning item: its id, summary and the opaque ``encrypted_content`` that lets a
    later turn replay it (present only when the request asked for ``reasoning.encrypted_content``)."""

    item_id: str
    summary: str
    encrypted_content: str | None


@dataclass(slots=True)
class ToolCallStarted:
    call_id: str
    name: str
    kind: str  # "function" | "custom"


@dataclass(slots=True)
class ToolCallArgsDelta:
    call_id: str
    delta: str


@dataclass(slots=True)
class ToolCallDone:
    call_id: str
    name: str
    arguments: str  # JSON text for functions, raw input for custom tools
    kind: str
    had_deltas: bool


@dataclass(slots=True)
class ImageGenerated:
    item_id: str
    result: str  # base64
    revised_prompt: str | None
    output_format: str


@dataclass(slots=True)
class Finished:
    status: str  # "completed" | "incomplete"
    reason: str | None  # incomplete_details.reason
    usage: Usage | None


@dataclass(slots=True)
class Failed:
    error: UpstreamError


Delta = TextDelta | ReasoningDelta | ReasoningDone | ToolCallStarted | ToolCallArgsDelta | ToolCallDone | ImageGenerated | Finished | Failed

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
# Events that carry nothing for the client: they never commit a response to an account.
PRELUDE_EVENTS = frozenset(
    {"response.created", "response.in_progress", "response.queued", "codex.rate_limits", "codex.response.metadata", "response.metadata"}
)


@dataclass(slots=True)
class _Call:
    call_id: str
    name: str
    kind: str
    args: list[str] = field(default_factory=list)
    done: bool = False


class CodexStreamParser:
    __slots__ = (
        "response_id",
        "model",
        "usage",
        "output_items",
        "terminal",
        "produced",
        "_calls",
        "_summary_parts",
        "_response",
    )

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.model: str | None = None
        self.usage: Usage | None = None
        self.output_items: list[dict[str, Any]] = []  # from output_item.done, in order
        self.terminal: Delta | None = None
        self.produced = False  # any text, reasoning, tool call or image seen
        self._calls: dict[str, _Call] = {}  # keyed by item id (fc_…) and by call id
        self._summary_parts: set[tuple[str, int]] = set()
        self._response: dict[str, Any] | None = None

    @property
    def final_response(self) -> dict[str, Any] | None:
        """The terminal event's ``response`` object, as the backend sent it."""
        return self._response

    def feed(self, name: str, data: dict[str, Any]) -> list[Delta]:
        name = name or data.get("type", "")
        handler = _HANDLERS.get(name)
        return handler(self, data) if handler else []

    # handlers --------------------------------------------------------------------------------

    def _on_created(self, data: dict[str, Any]) -> list[Delta]:
        response = data.get("response") or {}
        self.response_id = response.get("id") or self.response_id
        self.model = response.get("model") or self.model
        return []

    def _on_text_delta(self, data: dict[str, Any]) -> list[Delta]:
        delta = data.get("delta")
        if not delta:
            return []
        self.produced = True
        return [TextDelta(delta)]

    def _on_reasoning_delta(self, data: dict[str, Any]) -> list[Delta]:
        delta = data.get("delta")
        if not delta:
            return []
        self.produced = True
        return [ReasoningDelta(delta)]

    def _on_summary_part(self, data: dict[str, Any]) -> list[Delta]:
        # Separate summary parts with a blank line instead of gluing them together.
        key = (data.get("item_id") or "", data.get("summary_index") or 0)
        first = not self._summary_parts
        self._summary_parts.add(key)
        return [] if first else [ReasoningDelta("\n\n")]

    def _on_item_added(self, data: dict[str, Any]) -> list[Delta]:
        item = data.get("item") or {}
        kind = item.get("type")
        if kind not in ("function_call", "custom_tool_call"):
            return []
        call_id, name = item.get("call_id"), item.get("name")
        if not call_id or not name:
            return []
        call = _Call(call_id, name, "function" if kind == "function_call" else "custom")
        self._calls[call_id] = call
        if item.get("id"):
            self._calls[item["id"]] = call
        self.produced = True
        return [ToolCallStarted(call_id, name, call.kind)]

    def _on_args_delta(self, data: dict[str, Any]) -> list[Delta]:
        delta = data.get("delta")
        key = data.get("item_id") or data.get("call_id") or ""
        call = self._calls.get(key)
        if not delta:
            return []
        if call is None:
            return [ToolCallArgsDelta(key, delta)]
        call.args.append(delta)
        return [ToolCallArgsDelta(call.call_id, delta)]

    def _on_args_done(self, data: dict[str, Any]) -> list[Delta]:
        key = data.get("item_id") or data.get("call_id") or ""
        call = self._calls.get(key)
        arguments = data.get("arguments")
        if arguments is None:
            arguments = data.get("input", "")
        if call is None:
            # A done without a start: register it so the item.done fallback stays quiet.
            call_id = data.get("call_id") or key
            call = _Call(call_id, data.get("name") or "", "custom" if "input" in data else "function")
            self._calls[key] = self._calls[call_id] = call
            self.produced = True
            started: list[Delta] = [ToolCallStarted(call_id, call.name, call.kind)]
        else:
            started = []
        return started + self._finish_call(call, arguments)

    def _finish_call(self, call: _Call, arguments: str) -> list[Delta]:
        if call.done:
            return []
        call.done = True
        return [ToolCallDone(call.call_id, call.name, arguments or "".join(call.args), call.kind, bool(call.args))]

    def _on_item_done(self, data: dict[str, Any]) -> list[Delta]:
        item = data.get("item") or {}
        self.output_items.append(item)
        kind = item.get("type")
        if kind in ("function_call", "custom_tool_call"):
            call = self._calls.get(item.get("id") or "") or self._calls.get(item.get("call_id") or "")
            if call is None:
                call = _Call(item.get("call_id") or item.get("id") or "", item.get("name") or "", "function" if kind == "function_call" else "custom")
                self.produced = True
                out: list[Delta] = [ToolCallStarted(call.call_id, call.name, call.kind)]
            else:
                out = []
            payload = item.get("arguments") if kind == "function_call" else item.get("input")
            return out + self._finish_call(call, payload or "")
        if kind == "reasoning":
            summary = "\n\n".join(p.get("text") or "" for p in item.get("summary") or [] if isinstance(p, dict))
            return [ReasoningDone(item.get("id") or "", summary, item.get("encrypted_content") or None)]
        if kind == "image_generation_call" and item.get("result"):
            self.produced = True
            return [
                ImageGenerated(item.get("id") or "", item["result"], item.get("revised_prompt"), item.get("output_format") or "png")
            ]
        return []

    def _on_partial_image(self, data: dict[str, Any]) -> list[Delta]:
        self.produced = True  # a partial image is output: the turn is committed (and streams it)
        return []

    def _on_terminal(self, data: dict[str, Any]) -> list[Delta]:
        response = data.get("response") or {}
        self._response = response
        self.response_id = response.get("id") or self.response_id
        self.usage = Usage.from_response(response.get("usage")) or self.usage
        status = response.get("status") or ("incomplete" if data.get("type") == "response.incomplete" else "completed")
        reason = (response.get("incomplete_details") or {}).get("reason")
        if status == "incomplete" or data.get("type") == "response.incomplete":
            self.terminal = Finished("incomplete", reason, self.usage)
        else:
            self.terminal = Finished("completed", None, self.usage)
        return [self.terminal]

    def _on_failed(self, data: dict[str, Any]) -> list[Delta]:
        response = data.get("response")
        if isinstance(response, dict):
            self._response = response
            self.response_id = response.get("id") or self.response_id
        self.terminal = Failed(classify_event(data))
        return [self.terminal]


_HANDLERS = {
    "response.created": CodexStreamParser._on_created,
    "response.in_progress": CodexStreamParser._on_created,
    "response.queued": CodexStreamParser._on_created,
    "response.output_text.delta": CodexStreamParser._on_text_delta,
    "response.reasoning_summary_text.delta": CodexStreamParser._on_reasoning_delta,
    "response.reasoning_text.delta": CodexStreamParser._on_reasoning_delta,
    "response.reasoning_summary_part.added": CodexStreamParser._on_summary_part,
    "response.output_item.added": CodexStreamParser._on_item_added,
    "response.function_call_arguments.delta": CodexStreamParser._on_args_delta,
    "response.custom_tool_call_input.delta": CodexStreamParser._on_args_delta,
    "response.function_call_arguments.done": CodexStreamParser._on_args_done,
    "response.custom_tool_call_input.done": CodexStreamParser._on_args_done,
    "response.output_item.done": CodexStreamParser._on_item_done,
    "response.image_generation_call.partial_image": CodexStreamParser._on_partial_image,
    "response.completed": CodexStreamParser._on_terminal,
    "response.incomplete": CodexStreamParser._on_terminal,
    "response.failed": CodexStreamParser._on_failed,
    "error": CodexStreamParser._on_failed,
}
