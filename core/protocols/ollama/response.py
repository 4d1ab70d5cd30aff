"""The render context, Ollama's answer lines, and a whole Codex turn as one answer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.codex.events import Finished, ToolCallDone, Usage
from core.protocols.base import CollectedTurn, Reply, json_reply
from core.protocols.items import parse_arguments

DEFAULT_KEEP_ALIVE = 300.0  # seconds a model counts as "loaded" for /api/ps, as in Ollama


@dataclass(slots=True)
class OllamaContext:
    model: str  # the name the client asked for, echoed in every answer (Ollama does)
    model_id: str  # the Codex model serving it
    kind: str  # "chat" | "generate"
    want_thinking: bool = False
    keep_alive: float = DEFAULT_KEEP_ALIVE
    started_ns: int = field(default_factory=time.monotonic_ns)


def created_at(timestamp: float | None = None) -> str:
    """A time as Ollama writes it (RFC 3339, UTC, microseconds); now by default."""
    moment = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def done_reason(finish: Finished | None) -> str:
    return "length" if finish is not None and finish.reason == "max_output_tokens" else "stop"


def metrics(context: OllamaContext, usage: Usage | None, first_output_ns: int | None) -> dict[str, Any]:
    """Ollama's counters: tokens from the backend's usage, durations (ns) measured here. "Prompt
    eval" is the wait for the first output, "eval" the rest of the generation."""
    end = time.monotonic_ns()
    first = min(max(first_output_ns or end, context.started_ns), end)
    return {
        "total_duration": end - context.started_ns,
        "prompt_eval_count": usage.input_tokens if usage else 0,
        "prompt_eval_duration": first - context.started_ns,
        "eval_count": usage.output_tokens if usage else 0,
        "eval_duration": end - first,
    }


def tool_call_payload(call: ToolCallDone, index: int) -> dict[str, Any] | None:
    args = parse_arguments(call.arguments)
    if args is None:
        return None
    return {"id": call.call_id, "function": {"index": index, "name": call.name, "arguments": args}}


def answer_line(context: OllamaContext, content: str = "", *, thinking: str | None = None,
          tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if context.kind == "generate":
        payload: dict[str, Any] = {"model": context.model, "created_at": created_at(), "response": content}
        if thinking:
            payload["thinking"] = thinking
        return payload
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"model": context.model, "created_at": created_at(), "message": message}


def render_load(context: OllamaContext) -> Reply:
    """A request with nothing to answer loads the model (Ollama's preload idiom)."""
    return json_reply(200, {**answer_line(context), "done": True, "done_reason": "load"})


def render_response(collected: CollectedTurn, context: OllamaContext) -> Reply:
    text = collected.full_text
    calls: list[dict[str, Any]] = []
    for call in collected.tool_calls:
        if (payload := tool_call_payload(call, len(calls))) is not None:
            calls.append(payload)
        else:  # arguments that are not a JSON object cannot be an Ollama tool call: show them as text
            text += call.arguments
    thinking = collected.full_reasoning if context.want_thinking else None
    payload = answer_line(context, text, thinking=thinking, tool_calls=calls if context.kind == "chat" else None)
    payload.update(done=True, done_reason=done_reason(collected.finish), **metrics(context, collected.usage, collected.first_output_ns))
    return json_reply(200, payload)
