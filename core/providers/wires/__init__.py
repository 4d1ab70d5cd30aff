"""The wires: how a turn is asked of a provider and how its answer streams back.

Each wire module has ``build_request(spec) -> WireRequest`` (the Responses-shaped turn rendered in
the provider's request format) and ``StreamParser(spec)`` (``feed(chunk)`` / ``close()``: the
provider's streamed bytes → the Codex Responses events of core/providers/events.py). They are pure:
the caller (core/providers/caller.py) sends, retries and fails over.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.providers.model import Provider
from core.turn.model import Turn, UpstreamEvent

# Optional parameter groups a wire adds, which a model may refuse (the caller drops the group and
# asks again): "reasoning" (effort, thinking) and "sampling" (temperature, top_p).
OPTIONAL_GROUPS = ("reasoning", "sampling")
# A reasoning effort as a thinking-token budget (Anthropic's budget_tokens, Gemini's thinkingBudget).
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000, "max": 32000}


class SignatureMemo:
    """Gemini's thought signatures of recent function calls, by call id, to send back with the call
    in the next turn (Gemini 3 requires it; the Responses-shaped history has no place for it)."""

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._map: OrderedDict[str, str] = OrderedDict()

    def put(self, call_id: str, signature: str) -> None:
        self._map[call_id] = signature
        self._map.move_to_end(call_id)
        while len(self._map) > self._size:
            self._map.popitem(last=False)

    def get(self, call_id: str) -> str | None:
        return self._map.get(call_id)


@dataclass(slots=True)
class CallSpec:
    provider: Provider
    key: str
    model: str  # the model name the provider knows
    turn: Turn
    default_max_tokens: int
    omit: frozenset[str] = frozenset()
    signatures: SignatureMemo = field(default_factory=SignatureMemo)

    @property
    def body(self) -> dict[str, Any]:
        return self.turn.body

    @property
    def effort(self) -> str | None:
        if "reasoning" in self.omit:
            return None
        reasoning = self.body.get("reasoning")
        effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
        return effort if effort not in (None, "none") else None

    def sampling(self, name: str) -> Any:
        if name in ("temperature", "top_p") and "sampling" in self.omit:
            return None
        return self.turn.sampling.get(name)

    @property
    def thinking_budget(self) -> int | None:
        """The client's own thinking budget, else one for the turn's reasoning effort."""
        if self.effort is None:
            return None
        return self.turn.sampling.get("thinking_budget") or THINKING_BUDGETS.get(self.effort)

    @property
    def custom_tools(self) -> frozenset[str]:
        return frozenset(t.get("name") for t in self.body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "custom")

    def url(self, path: str) -> str:
        return self.provider.base_url.rstrip("/") + path

    def headers(self, auth: dict[str, str]) -> dict[str, str]:
        return {**self.provider.headers, "Content-Type": "application/json", "Accept": "text/event-stream", **auth}


@dataclass(slots=True)
class WireRequest:
    url: str
    headers: dict[str, str]
    body: bytes


class StreamParser(Protocol):
    def feed(self, chunk: bytes) -> list[UpstreamEvent]: ...

    def close(self) -> list[UpstreamEvent]: ...


class Wire(Protocol):
    def build_request(self, spec: CallSpec) -> WireRequest: ...

    StreamParser: type


def echo_of(spec: CallSpec) -> dict[str, Any]:
    """What the synthesized Responses objects repeat of the request."""
    body = spec.body
    return {"instructions": body.get("instructions") if isinstance(body.get("instructions"), str) else None,
            "tools": body.get("tools") or [], "tool_choice": body.get("tool_choice", "auto"),
            "parallel_tool_calls": body.get("parallel_tool_calls", True), "reasoning": body.get("reasoning"),
            "max_output_tokens": spec.turn.sampling.get("max_output_tokens"),
            "temperature": spec.turn.sampling.get("temperature"), "top_p": spec.turn.sampling.get("top_p")}  # fmt: skip


def function_tools(body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, description, JSON-schema parameters) of the turn's function and custom tools; hosted
    tools (web search, image generation) exist only at the ChatGPT backend and are left out."""
    tools = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict) or not tool.get("name"):
            continue
        if tool.get("type") == "function":
            parameters = tool.get("parameters") if isinstance(tool.get("parameters"), dict) else {"type": "object", "properties": {}}
            tools.append((tool["name"], str(tool.get("description") or ""), parameters))
        elif tool.get("type") == "custom":
            schema = {"type": "object", "properties": {"input": {"type": "string", "description": "The raw input for the tool"}},
                      "required": ["input"]}  # fmt: skip
            tools.append((tool["name"], str(tool.get("description") or ""), schema))
    return tools


def forced_tool(body: dict[str, Any]) -> tuple[str, str | None]:
    """The tool choice as (mode, function name): mode is auto, none, required or function."""
    choice = body.get("tool_choice")
    if choice in ("none", "required"):
        return choice, None
    if isinstance(choice, dict) and choice.get("type") in ("function", "custom") and choice.get("name"):
        return "function", str(choice["name"])
    return "auto", None
