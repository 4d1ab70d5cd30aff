"""The render context, and a whole Codex turn as one ``chat.completion``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from core.codex.events import Finished, ImageGenerated, ToolCallDone, Usage
from core.protocols.base import CollectedTurn, Reply, json_reply, now_seconds, random_id


@dataclass(slots=True)
class ChatContext:
    model: str  # display model echoed to the client
    want_reasoning: bool
    include_usage: bool
    custom_tools: frozenset[str] = field(default_factory=frozenset)
    # Cursor's agent reads every tool call as a function: custom calls (ApplyPatch) go out in that
    # envelope, their raw input as the arguments, and come back so (messages.py turns them back).
    custom_as_function: bool = False
    completion_id: str = field(default_factory=lambda: random_id("chatcmpl-"))
    created: int = field(default_factory=now_seconds)


def usage_payload(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    payload: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens is not None:
        payload["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        payload["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return payload


def finish_reason(finish: Finished | None, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_calls"
    if finish is not None and finish.status == "incomplete":
        return "content_filter" if finish.reason == "content_filter" else "length"
    return "stop"


def _tool_call_payload(call: ToolCallDone, custom_as_function: bool) -> dict[str, Any]:
    if call.kind == "custom" and not custom_as_function:
        return {"id": call.call_id, "type": "custom", "custom": {"name": call.name, "input": call.arguments}}
    return {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments or "{}"}}


def image_call_payload(image: ImageGenerated) -> dict[str, Any]:
    arguments: dict[str, Any] = {"result": image.result}
    if image.revised_prompt:
        arguments["revised_prompt"] = image.revised_prompt
    return {"id": image.item_id, "type": "function", "function": {"name": "image_generation", "arguments": orjson.dumps(arguments).decode()}}


def render_response(collected: CollectedTurn, context: ChatContext) -> Reply:
    tool_calls = [_tool_call_payload(c, context.custom_as_function) for c in collected.tool_calls] + [image_call_payload(i) for i in collected.images]
    message: dict[str, Any] = {"role": "assistant", "content": collected.full_text or None, "refusal": None}
    if context.want_reasoning and collected.reasoning:
        message["reasoning_content"] = collected.full_reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    payload = {
        "id": context.completion_id,
        "object": "chat.completion",
        "created": context.created,
        "model": context.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(collected.finish, bool(tool_calls))}],
        "usage": usage_payload(collected.usage),
    }
    return json_reply(200, payload)
