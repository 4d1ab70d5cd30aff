"""Chat messages and tool definitions as Codex input items and tools (the Ollama translator
rewrites its messages into this shape and uses these too)."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.request import normalize_tool_parameters
from core.protocols.base import BadRequest
from core.protocols.items import pair_tool_calls, text_of_parts

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def messages_to_items(messages: list[Any], custom_tools: frozenset[str]) -> tuple[str, list[dict[str, Any]]]:
    """Chat messages as (instructions, input items); system/developer text is hoisted. Also the
    Ollama bridge's path, whose messages it first rewrites into this shape."""
    system: list[str] = []
    items: list[dict[str, Any]] = []
    custom_calls: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"Invalid request: messages[{index}] must be an object", code="invalid_request", param="messages")
        role = message.get("role")
        if role not in ROLES:
            raise BadRequest(f"Invalid request: messages[{index}].role {role!r} is not one of {', '.join(sorted(ROLES))}", code="invalid_request", param="messages")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise BadRequest(f"Invalid request: messages[{index}].content must be a string, an array or null", code="invalid_request", param="messages")
        if role in ("system", "developer"):
            if text := text_of_parts(content).strip():
                system.append(text)
        elif role == "user":
            items.append({"type": "message", "role": "user", "content": _user_parts(content, index)})
        elif role == "assistant":
            text = text_of_parts(content)
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise BadRequest(f"Invalid request: messages[{index}].tool_calls must be an array", code="invalid_request", param="messages")
            if text or not calls:
                items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]})
            for call in calls:
                items.append(_assistant_call(call, index, custom_tools, custom_calls))
            if isinstance(message.get("function_call"), dict):  # legacy single function call
                fc = message["function_call"]
                items.append({"type": "function_call", "call_id": f"fc_{fc.get('name')}", "name": fc.get("name") or "", "arguments": fc.get("arguments") or "{}"})
        elif role == "tool":
            call_id = message.get("tool_call_id") or "unknown"
            kind = "custom_tool_call_output" if call_id in custom_calls else "function_call_output"
            items.append({"type": kind, "call_id": call_id, "output": text_of_parts(content)})
        else:  # legacy "function" role
            items.append({"type": "function_call_output", "call_id": f"fc_{message.get('name') or 'unknown'}", "output": text_of_parts(content)})
    return "\n\n".join(system), pair_tool_calls(items)


def _user_parts(content: Any, index: int) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return [{"type": "input_text", "text": content or ""}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict) or "type" not in part:
            raise BadRequest(f"Invalid request: messages[{index}].content parts need a 'type'", code="invalid_request", param="messages")
        kind = part["type"]
        if kind in ("text", "input_text"):
            parts.append({"type": "input_text", "text": str(part.get("text") or "")})
        elif kind in ("image_url", "input_image"):
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url:
                item: dict[str, Any] = {"type": "input_image", "image_url": url}
                detail = image.get("detail") if isinstance(image, dict) else part.get("detail")
                if detail in ("low", "high", "auto"):
                    item["detail"] = detail
                parts.append(item)
        elif kind == "file" and isinstance(part.get("file"), dict):
            file = part["file"]
            item = {"type": "input_file"}
            for key in ("file_data", "file_id", "filename"):
                if file.get(key):
                    item[key] = file[key]
            parts.append(item)
        # input_audio and other part types have no Codex equivalent: dropped
    return parts or [{"type": "input_text", "text": ""}]


def _assistant_call(call: Any, index: int, custom_tools: frozenset[str], custom_calls: set[str]) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise BadRequest(f"Invalid request: messages[{index}].tool_calls entries must be objects", code="invalid_request", param="messages")
    call_id = call.get("id") or f"call_{index}"
    if call.get("type") == "custom" or isinstance(call.get("custom"), dict):
        custom = call.get("custom") or {}
        custom_calls.add(call_id)
        return {"type": "custom_tool_call", "call_id": call_id, "name": custom.get("name") or "", "input": custom.get("input") or ""}
    function = call.get("function") or {}
    name = function.get("name") or ""
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    if name in custom_tools:  # Cursor replays custom-tool calls in the function envelope
        custom_calls.add(call_id)
        return {"type": "custom_tool_call", "call_id": call_id, "name": name, "input": arguments}
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def tools_to_codex(tools: Any) -> tuple[list[dict[str, Any]], frozenset[str]]:
    """Chat (and Ollama, same shape) tool definitions as Codex tools, plus the custom tools' names."""
    if tools is None:
        return [], frozenset()
    if not isinstance(tools, list):
        raise BadRequest("Invalid request: 'tools' must be an array", code="invalid_request", param="tools")
    out: list[dict[str, Any]] = []
    custom: set[str] = set()
    for tool in tools:
        if not isinstance(tool, dict):
            raise BadRequest("Invalid request: each tool must be an object", code="invalid_request", param="tools")
        kind = tool.get("type", "function")
        if kind == "function":
            fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
            if not fn.get("name"):
                raise BadRequest("Invalid request: function tools need a name", code="invalid_request", param="tools")
            entry: dict[str, Any] = {"type": "function", "name": fn["name"], "strict": bool(fn.get("strict", False))}
            if fn.get("description"):
                entry["description"] = fn["description"]
            # Responses-style flat tools (Cursor) may name the schema input_schema or schema.
            entry["parameters"] = normalize_tool_parameters(next((fn[k] for k in ("parameters", "input_schema", "schema") if fn.get(k) is not None), None))
            out.append(entry)
        elif kind == "custom":
            spec = tool.get("custom") if isinstance(tool.get("custom"), dict) else tool
            entry = {"type": "custom", "name": spec.get("name")}
            for key in ("description", "format"):
                if spec.get(key):
                    entry[key] = spec[key]
            custom.add(spec.get("name"))
            out.append(entry)
        elif kind in ("web_search", "web_search_preview"):
            out.append({"type": "web_search", **{k: tool[k] for k in ("search_context_size", "user_location") if k in tool}})
        elif kind == "image_generation":
            out.append(tool)
    return out, frozenset(custom)
