"""Anthropic tool definitions and ``tool_choice`` as Codex tools, and a tool call's input as sent back."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.events import ToolCallDone
from core.codex.request import normalize_tool_parameters
from core.protocols.anthropic.errors import invalid

# Claude Code's Read tool rejects `pages: ""`, which GPT models like to send for optional fields:
# such arguments are held until complete and the empty value dropped (plus a hint in the schema).
EMPTY_STRING_OPTIONALS: dict[str, frozenset[str]] = {"Read": frozenset({"pages"})}
_PAGES_HINT = " Omit this field entirely for non-PDF files; do not pass an empty string."


def loaded_tools(messages: list[dict[str, Any]]) -> frozenset[str]:
    """Names of deferred tools that ``tool_reference`` blocks (tool search results) have loaded."""
    names: set[str] = set()
    for message in messages:
        for block in message["content"] if isinstance(message["content"], list) else ():
            inner = block.get("content") if block["type"] == "tool_result" else None
            for part in inner if isinstance(inner, list) else ():
                if isinstance(part, dict) and part.get("type") == "tool_reference" and isinstance(part.get("tool_name"), str):
                    names.add(part["tool_name"])
    return frozenset(names)


def tool_list(raw: Any) -> list[dict[str, Any]]:
    """The request's ``tools``: absent is none, anything but an array of objects is refused."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise invalid("tools: must be an array of tool objects", "tools")
    return raw


def translate_tools(raw: Any, loaded: frozenset[str] = frozenset()) -> tuple[list[dict[str, Any]], frozenset[str]]:
    """Codex tools, and the names of the client's hosted web-search tools (for ``tool_choice``).
    A ``defer_loading`` tool is sent only once a ``tool_reference`` has loaded it (``loaded``)."""
    tools: list[dict[str, Any]] = []
    hosted: set[str] = set()
    for tool in tool_list(raw):
        kind = tool.get("type")
        if kind in (None, "custom"):
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise invalid("tools: every tool needs a name", "tools")
            if tool.get("defer_loading") and name not in loaded:
                continue
            entry: dict[str, Any] = {"type": "function", "name": name, "strict": False}
            if tool.get("description"):
                entry["description"] = str(tool["description"])
            entry["parameters"] = _with_hints(name, normalize_tool_parameters(tool.get("input_schema")))
            tools.append(entry)
        elif isinstance(kind, str) and kind.startswith("web_search"):
            hosted.add(str(tool.get("name") or "web_search"))
            if not any(t["type"] == "web_search" for t in tools):
                search: dict[str, Any] = {"type": "web_search"}
                if isinstance(tool.get("user_location"), dict):
                    search["user_location"] = tool["user_location"]
                tools.append(search)
        # Other Anthropic-defined tools (bash_*, text_editor_*, computer_*, code_execution_*, ...)
        # have no counterpart on the Codex backend and are left out.
    return tools, frozenset(hosted)


def _with_hints(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    fields = EMPTY_STRING_OPTIONALS.get(name, frozenset())
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    if not fields & properties.keys():
        return schema
    hinted = dict(properties)
    for key in fields & properties.keys():
        spec = hinted[key] if isinstance(hinted[key], dict) else {}
        description = str(spec.get("description") or "")
        if not description.endswith(_PAGES_HINT):
            hinted[key] = {**spec, "description": description + _PAGES_HINT}
    return {**schema, "properties": hinted}


def translate_tool_choice(choice: Any, hosted: frozenset[str]) -> tuple[Any, bool]:
    """(Codex ``tool_choice`` or None, whether parallel tool calls stay allowed)."""
    if choice is None:
        return None, True
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise invalid("tool_choice.type: must be 'auto', 'any', 'tool' or 'none'", "tool_choice")
    parallel = not choice.get("disable_parallel_tool_use")
    kind = choice["type"]
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise invalid("tool_choice.name: required when tool_choice.type is 'tool'", "tool_choice")
        return ({"type": "web_search"} if name in hosted else {"type": "function", "name": name}), parallel
    return {"auto": "auto", "any": "required", "none": "none"}[kind], parallel


def tool_input(call: ToolCallDone) -> dict[str, Any]:
    """The call's arguments as the ``input`` object (invalid JSON → {}), minus empty optionals."""
    try:
        value = orjson.loads(call.arguments) if call.arguments else {}
    except orjson.JSONDecodeError:
        value = {}
    if not isinstance(value, dict):
        return {}
    drop = EMPTY_STRING_OPTIONALS.get(call.name, frozenset())
    return {k: v for k, v in value.items() if not (k in drop and v == "")}
