"""The render context, and a whole Codex turn as one ``GenerateContentResponse``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.codex.events import Finished, ImageGenerated, ToolCallDone, Usage
from core.protocols.base import CollectedTurn, Reply, json_reply, random_id
from core.protocols.items import parse_arguments


@dataclass(slots=True)
class GeminiContext:
    model: str  # the model name from the URL, echoed as modelVersion
    sse: bool = True
    include_thoughts: bool = False
    response_id: str = field(default_factory=lambda: random_id("", 12))


def finish_reason(finish: Finished | None) -> str:
    if finish is None or finish.status != "incomplete":
        return "STOP"
    return {"max_output_tokens": "MAX_TOKENS", "content_filter": "SAFETY"}.get(finish.reason or "", "OTHER")


def usage_metadata(usage: Usage | None) -> dict[str, Any] | None:
    """Gemini counts thoughts apart from the answer: candidates + thoughts = Codex output tokens."""
    if usage is None:
        return None
    thoughts = usage.reasoning_tokens or 0
    meta: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(0, usage.output_tokens - thoughts),
        "totalTokenCount": usage.total_tokens,
    }
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def call_part(call: ToolCallDone) -> dict[str, Any] | None:
    args = parse_arguments(call.arguments)
    if args is None:
        return None
    return {"functionCall": {"id": call.call_id, "name": call.name, "args": args}}


def image_part(image: ImageGenerated) -> dict[str, Any]:
    return {"inlineData": {"mimeType": f"image/{image.output_format or 'png'}", "data": image.result}}


def response_payload(context: GeminiContext, parts: list[dict[str, Any]], finish: str | None = None, usage: Usage | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    payload: dict[str, Any] = {"candidates": [candidate]}
    if finish and (meta := usage_metadata(usage)) is not None:
        payload["usageMetadata"] = meta
    payload["modelVersion"] = context.model
    payload["responseId"] = context.response_id
    return payload


def render_response(collected: CollectedTurn, context: GeminiContext) -> Reply:
    parts: list[dict[str, Any]] = []
    if context.include_thoughts and collected.reasoning:
        parts.append({"text": collected.full_reasoning, "thought": True})
    if collected.text:
        parts.append({"text": collected.full_text})
    calls = [call_part(c) for c in collected.tool_calls]
    parts += [c for c in calls if c is not None]
    parts += [image_part(i) for i in collected.images]
    finish = finish_reason(collected.finish)
    if None in calls and not any(calls):
        finish = "MALFORMED_FUNCTION_CALL"
    return json_reply(200, response_payload(context, parts or [{"text": ""}], finish, collected.usage))
