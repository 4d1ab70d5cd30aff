"""An Anthropic Messages body as a Codex turn."""

from __future__ import annotations

import re
from typing import Any

import orjson

from core.codex.catalog import ModelCatalog, ResolvedModel
from core.codex.request import (
    DEFAULT_INSTRUCTIONS,
    effort_for_budget,
    reasoning_fields,
    stable_conversation_key,
    wire_service_tier,
)
from core.protocols.anthropic.errors import invalid
from core.protocols.anthropic.response import AnthropicContext
from core.protocols.anthropic.thinking import replayed_reasoning
from core.protocols.anthropic.tools import loaded_tools, translate_tool_choice, translate_tools
from core.protocols.base import ClientRequest, expect_object, sampling_of
from core.protocols.items import pair_tool_calls
from core.settings import Settings
from core.turn.model import Prepared, Turn

BILLING_HEADER = "x-anthropic-billing-header:"  # Claude Code's per-request line; it would break prompt caching
_OUTPUT_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "xhigh"}
_ROLES = {"user": "user", "assistant": "assistant", "system": "developer", "developer": "developer"}
_LEGACY_SESSION = re.compile(r"_session_([0-9a-fA-F-]{36})$")


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Prepared:
    body = expect_object(request.json())
    model_name = requested_model(body)
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("max_tokens: a positive integer is required", "max_tokens")
    messages = message_list(body)
    if body.get("stream") is not None and not isinstance(body.get("stream"), bool):
        raise invalid("stream: must be a boolean", "stream")
    model = catalog.resolve(model_name)
    effort = _effort(body, model, catalog, cfg)
    thinking = body.get("thinking") if isinstance(body.get("thinking"), dict) else {}
    thinking_text = thinking.get("display") != "omitted"
    instructions = _instructions(body.get("system"))
    items = _messages(messages) or [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": ""}]}]
    tools, hosted = translate_tools(body.get("tools"), loaded_tools(messages))
    codex: dict[str, Any] = {
        "model": model.id,
        "instructions": instructions or DEFAULT_INSTRUCTIONS,
        "input": items,
        "tools": tools,
        **reasoning_fields(effort, "auto" if thinking_text else None),
    }
    choice, parallel = translate_tool_choice(body.get("tool_choice"), hosted)
    if tools:
        codex["parallel_tool_calls"] = parallel
        if choice is not None:
            codex["tool_choice"] = choice
    speed = "fast" if body.get("speed") == "fast" else None  # Anthropic's fast mode is Codex's priority tier
    if tier := wire_service_tier(speed or model.tier or cfg.model.default_service_tier):
        codex["service_tier"] = tier
    key = _conversation_key(request, body) or stable_conversation_key(model.id, instructions, items)
    context = AnthropicContext(model=model_name, want_reasoning=bool(effort), thinking_text=thinking_text)
    sampling = sampling_of(max_tokens, body.get("temperature"), body.get("top_p"), body.get("stop_sequences"),
                           thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None)
    return Prepared(Turn("anthropic", codex, model, body.get("stream") is True, key, sampling=sampling), context)


def requested_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("model: a model name is required", "model")
    return model.strip()


def message_list(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: a non-empty array is required", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{index}: must be an object", "messages")
        if not isinstance(message.get("role"), str) or not message["role"]:
            raise invalid(f"messages.{index}.role: a role is required", "messages")
        content = message.get("content")
        if not isinstance(content, (str, list)):
            raise invalid(f"messages.{index}.content: must be a string or an array of content blocks", "messages")
        if isinstance(content, list) and not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in content):
            raise invalid(f"messages.{index}.content: every content block needs a 'type'", "messages")
    return messages


def _effort(body: dict[str, Any], model: ResolvedModel, catalog: ModelCatalog, cfg: Settings) -> str | None:
    """Thinking budget → ``output_config.effort`` → model-name suffix → (adaptive: the model's
    default) → config default; then clamped to what the model supports."""
    thinking = body.get("thinking")
    adaptive = False
    effort: str | None = None
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            raise invalid("thinking.type: must be 'enabled', 'disabled' or 'adaptive'", "thinking")
        budget = thinking.get("budget_tokens")
        if thinking["type"] == "enabled" and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
            raise invalid("thinking.budget_tokens: a positive integer is required when thinking is enabled", "thinking")
        if thinking["type"] != "disabled":
            effort = effort_for_budget(budget)
            adaptive = thinking["type"] == "adaptive"
    output_config = body.get("output_config")
    if effort is None and isinstance(output_config, dict):
        effort = _OUTPUT_EFFORTS.get(output_config.get("effort"))
    effort = effort or model.effort
    if effort is None and adaptive:
        info = catalog.get(model.id)
        effort = (info.default_effort if info else None) or "medium"
    effort = effort or cfg.model.default_reasoning_effort
    return catalog.supported_effort(model.id, effort) if effort else None


def _instructions(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        texts = [system]
    elif isinstance(system, list):
        if not all(isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system):
            raise invalid("system: must be a string or an array of text blocks", "system")
        texts = [b["text"] for b in system]
    else:
        raise invalid("system: must be a string or an array of text blocks", "system")
    kept = ("\n".join(line for line in text.split("\n") if not line.startswith(BILLING_HEADER)).strip() for text in texts)
    return "\n\n".join(text for text in kept if text)


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        role = _ROLES.get(message["role"], "user")
        content = message["content"]
        if isinstance(content, str):
            items.append(_message_item(role, [_text_part(role, content)]))
        else:
            items.extend(_block_items(role, content))
    return pair_tool_calls(items)


def _message_item(role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": parts}


def _text_part(role: str, text: str) -> dict[str, Any]:
    return {"type": "output_text" if role == "assistant" else "input_text", "text": text}


def _block_items(role: str, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One message's blocks as Codex items, in the client's order: consecutive text/media blocks
    form one message item; tool calls, tool results and replayed reasoning stand alone."""
    items: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []

    def flush() -> None:
        if parts:
            items.append(_message_item(role, parts.copy()))
            parts.clear()

    for block in blocks:
        kind = block["type"]
        if kind == "text":
            if text := block.get("text"):
                parts.append(_text_part(role, str(text)))
        elif kind in ("image", "document"):
            if role != "assistant" and (part := _media_part(block)) is not None:
                parts.append(part)
        elif kind == "tool_use":
            flush()
            items.append({
                "type": "function_call",
                "call_id": str(block.get("id") or f"toolu_{block.get('name')}"),
                "name": str(block.get("name") or ""),
                "arguments": orjson.dumps(block.get("input") if isinstance(block.get("input"), dict) else {}).decode(),
            })
        elif kind == "tool_result":
            flush()
            items.append({"type": "function_call_output", "call_id": str(block.get("tool_use_id") or "unknown"), "output": _tool_output(block)})
        elif kind == "thinking":
            if (item := replayed_reasoning(block.get("signature"), str(block.get("thinking") or ""))) is not None:
                flush()
                items.append(item)
        # redacted_thinking (never ours), server_tool_use, web_search_tool_result and other
        # server-side blocks have no Codex input
    flush()
    return items


def _media_part(block: dict[str, Any]) -> dict[str, Any] | None:
    """An image or document block as a Codex content part (None when it has no usable source)."""
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    kind = source.get("type")
    if kind == "base64" and isinstance(source.get("data"), str):
        data_url = f"data:{source.get('media_type') or 'application/octet-stream'};base64,{source['data']}"
        if block["type"] == "image":
            return {"type": "input_image", "image_url": data_url}
        return {"type": "input_file", "filename": str(block.get("title") or "document.pdf"), "file_data": data_url}
    if kind == "url" and isinstance(source.get("url"), str):
        if block["type"] == "image":
            return {"type": "input_image", "image_url": source["url"]}
        return {"type": "input_file", "file_url": source["url"]}
    if kind == "text" and isinstance(source.get("data"), str):  # plain-text document
        return {"type": "input_text", "text": source["data"]}
    if kind == "content" and isinstance(source.get("content"), (str, list)):
        text = _plain_text(source["content"])
        return {"type": "input_text", "text": text} if text else None
    return None  # file ids of Anthropic's Files API mean nothing to the Codex backend


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(b.get("text") or "") for b in content if isinstance(b, dict) and b.get("type") == "text")


def _tool_output(block: dict[str, Any]) -> str | list[dict[str, Any]]:
    """A tool result's content: a string, or input_text/input_image parts when it holds images."""
    content = block.get("content")
    error_prefix = "Error: " if block.get("is_error") else ""
    if not isinstance(content, list):
        return error_prefix + (content if isinstance(content, str) else "")
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            parts.append({"type": "input_text", "text": str(part.get("text") or "")})
        elif part.get("type") == "image" and (image := _media_part(part)) is not None:
            parts.append(image)
        elif part.get("type") == "tool_reference":  # tool search loaded a deferred tool (sent in `tools`)
            parts.append({"type": "input_text", "text": f"Tool {part.get('tool_name')} is now available."})
    if not any(p["type"] == "input_image" for p in parts):
        return error_prefix + "\n".join(p["text"] for p in parts)
    return ([{"type": "input_text", "text": error_prefix.strip()}] if error_prefix else []) + parts


def _conversation_key(request: ClientRequest, body: dict[str, Any]) -> str | None:
    """Claude Code's session id: its header, else the one inside ``metadata.user_id`` (a JSON
    object with ``session_id`` and ``device_id`` now, ``user_…_session_<uuid>`` before)."""
    if session := (request.headers.get("x-claude-code-session-id") or "").strip():
        return session
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user_id, str):
        return None
    try:
        parsed = orjson.loads(user_id)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        session, device = parsed.get("session_id"), parsed.get("device_id")
        if isinstance(session, str) and session.strip() and isinstance(device, str) and device.strip():
            return session.strip()
        return None
    match = _LEGACY_SESSION.search(user_id)
    return match.group(1) if match else None
