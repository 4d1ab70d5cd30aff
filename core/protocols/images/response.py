"""The render context, and the generated image(s) as OpenAI's ``ImagesResponse``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.codex.errors import UpstreamError
from core.protocols.base import CollectedTurn, Reply, json_reply
from core.protocols.openai_chat.errors import render_error

# What the Images API's answer may say; the backend's own words outside these (quality "auto") are left out.
SIZES = frozenset({"1024x1024", "1024x1536", "1536x1024"})
QUALITIES = frozenset({"low", "medium", "high"})
BACKGROUNDS = frozenset({"transparent", "opaque"})


@dataclass(slots=True)
class ImagesContext:
    created: int
    edit: bool  # /images/edits (stream events are named image_edit.*)
    output_format: str


def no_image_error(text: str) -> UpstreamError:
    said = f" (the model answered with text instead: {text[:200]!r})" if text.strip() else ""
    return UpstreamError(502, "image_generation_failed", "Upstream returned no image_generation_call.result" + said)


def item_fields(item: dict[str, Any] | None) -> dict[str, Any]:
    """background, quality and size as the image_generation_call item reported them."""
    item = item or {}
    fields = {"background": item.get("background"), "quality": item.get("quality"), "size": item.get("size")}
    allowed = {"background": BACKGROUNDS, "quality": QUALITIES, "size": SIZES}
    return {k: v for k, v in fields.items() if v in allowed[k]}


def usage_of(response: dict[str, Any] | None, edit: bool) -> dict[str, Any] | None:
    """The tool's token usage (``tool_usage.image_gen``); a prompt is all text when nothing was edited."""
    usage = ((response or {}).get("tool_usage") or {}).get("image_gen")
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        return None
    out = {k: usage[k] for k in ("input_tokens", "output_tokens", "total_tokens") if isinstance(usage.get(k), int)}
    details = usage.get("input_tokens_details")
    if isinstance(details, dict):
        out["input_tokens_details"] = details
    elif not edit:
        out["input_tokens_details"] = {"text_tokens": usage["input_tokens"], "image_tokens": 0}
    else:
        return None
    return out


def render_response(collected: CollectedTurn, context: ImagesContext) -> Reply:
    if not collected.images:
        return render_error(no_image_error(collected.full_text))
    items = {i.get("id"): i for i in collected.output_items if i.get("type") == "image_generation_call"}
    first = collected.images[0]
    body: dict[str, Any] = {
        "created": context.created,
        "data": [{"b64_json": image.result, **({"revised_prompt": image.revised_prompt} if image.revised_prompt else {})}
                 for image in collected.images],
        "output_format": first.output_format or context.output_format,
        **item_fields(items.get(first.item_id)),
    }  # fmt: skip
    if (usage := usage_of(collected.response, context.edit)) is not None:
        body["usage"] = usage
    return json_reply(200, body)
