"""The render context, and a whole Codex turn as one Anthropic message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.codex.events import Finished, Usage
from core.protocols.anthropic.thinking import thinking_block
from core.protocols.anthropic.tools import tool_input
from core.protocols.base import CollectedTurn, Reply, json_reply, random_id


@dataclass(slots=True)
class AnthropicContext:
    model: str  # echoed to the client: the name it asked for
    want_reasoning: bool  # the request has a reasoning effort: answers carry thinking blocks
    thinking_text: bool = True  # False for thinking.display "omitted": blocks carry only the signature
    message_id: str = field(default_factory=lambda: random_id("msg_"))


def usage_payload(usage: Usage | None) -> dict[str, int]:
    """Anthropic usage: ``input_tokens`` excludes the cached part, reported separately."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    return {
        "input_tokens": usage.uncached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens or 0,
    }


def stop_reason(finish: Finished | None, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_use"
    if finish is not None and finish.status == "incomplete":
        return "refusal" if finish.reason == "content_filter" else "max_tokens"
    return "end_turn"


def render_response(collected: CollectedTurn, context: AnthropicContext) -> Reply:
    content: list[dict[str, Any]] = []
    if context.want_reasoning:
        blocks = [b for r in collected.reasoning_items if (b := thinking_block(r, context.thinking_text)) is not None]
        if not blocks and collected.reasoning and context.thinking_text:  # summary text without a finished item
            blocks = [{"type": "thinking", "thinking": collected.full_reasoning, "signature": ""}]
        content += blocks
    if collected.full_text:
        content.append({"type": "text", "text": collected.full_text})
    for call in collected.tool_calls:
        content.append({"type": "tool_use", "id": call.call_id, "name": call.name, "input": tool_input(call)})
    payload = {
        "id": context.message_id,
        "type": "message",
        "role": "assistant",
        "model": context.model,
        "content": content,
        "stop_reason": stop_reason(collected.finish, bool(collected.tool_calls)),
        "stop_sequence": None,
        "usage": usage_payload(collected.usage),
    }
    return json_reply(200, payload)
