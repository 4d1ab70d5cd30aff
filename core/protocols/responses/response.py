"""The render context, and a whole Codex turn as the Responses object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.protocols.base import CollectedTurn, Reply, json_reply, random_id


@dataclass(slots=True)
class ResponsesContext:
    model: str


def with_output(response: dict[str, Any] | None, items: list[dict[str, Any]], fallback_text: str = "") -> dict[str, Any]:
    """The backend often sends ``response.completed`` with ``output: []``; the items streamed in
    ``output_item.done`` are the real output, so put them back for clients that read the final object."""
    response = dict(response or {})
    if not response.get("output"):
        if items:
            response["output"] = items
        elif fallback_text:
            response["output"] = [{
                "type": "message", "id": random_id("msg_"), "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": fallback_text, "annotations": []}],
            }]
        else:
            response["output"] = []
    return response


def render_response(collected: CollectedTurn, context: ResponsesContext) -> Reply:
    response = with_output(collected.response, collected.output_items, collected.full_text)
    response.setdefault("id", collected.response_id or random_id("resp_"))
    response.setdefault("object", "response")
    response.setdefault("model", context.model)
    response.setdefault("status", collected.finish.status if collected.finish else "completed")
    return json_reply(200, response)
