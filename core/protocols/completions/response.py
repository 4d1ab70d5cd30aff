"""The render context, and a whole Codex turn as one ``text_completion``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.codex.events import Finished, Usage
from core.protocols.base import CollectedTurn, Reply, json_reply, now_seconds, random_id


@dataclass(slots=True)
class CompletionContext:
    model: str  # display model echoed to the client
    echo: str  # the prompt, when the client asked for it back in front of the answer
    include_usage: bool
    completion_id: str = field(default_factory=lambda: random_id("cmpl-"))
    created: int = field(default_factory=now_seconds)


def usage_payload(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens, "total_tokens": usage.total_tokens}


def finish_reason(finish: Finished | None) -> str:
    return "length" if finish is not None and finish.status == "incomplete" else "stop"


def render_response(collected: CollectedTurn, context: CompletionContext) -> Reply:
    choice = {"text": context.echo + collected.full_text, "index": 0, "logprobs": None, "finish_reason": finish_reason(collected.finish)}
    return json_reply(200, {
        "id": context.completion_id,
        "object": "text_completion",
        "created": context.created,
        "model": context.model,
        "choices": [choice],
        "usage": usage_payload(collected.usage),
    })
