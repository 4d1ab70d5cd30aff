"""Function declarations, Google's hosted search and ``toolConfig`` as Codex tools and ``tool_choice``."""

from __future__ import annotations

from typing import Any

from core.codex.request import normalize_tool_parameters
from core.protocols.base import BadRequest
from core.protocols.gemini.casing import pick
from core.protocols.gemini.schema import lowercase_types, openapi_to_json_schema

_WEB_SEARCH_TOOLS = ("googleSearch", "googleSearchRetrieval")


def translate_tools(groups: Any) -> tuple[list[dict[str, Any]], list[str]]:
    if groups is None:
        return [], []
    if isinstance(groups, dict):
        groups = [groups]
    if not isinstance(groups, list):
        raise BadRequest("tools must be an array")
    tools: list[dict[str, Any]] = []
    names: list[str] = []
    web_search = False
    for group in groups:
        if not isinstance(group, dict):
            raise BadRequest("each entry of tools must be an object")
        declarations = pick(group, "functionDeclarations") or []
        if not isinstance(declarations, list):
            raise BadRequest("tools[].functionDeclarations must be an array")
        for declaration in declarations:
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str) or not declaration["name"]:
                raise BadRequest("every function declaration needs a name")
            json_schema = pick(declaration, "parametersJsonSchema")
            schema = lowercase_types(json_schema) if json_schema is not None else openapi_to_json_schema(declaration.get("parameters"))
            entry: dict[str, Any] = {"type": "function", "name": declaration["name"], "strict": False}
            if declaration.get("description"):
                entry["description"] = declaration["description"]
            entry["parameters"] = normalize_tool_parameters(schema)
            tools.append(entry)
            names.append(declaration["name"])
        web_search = web_search or any(pick(group, key) is not None for key in _WEB_SEARCH_TOOLS)
        # codeExecution, urlContext, computerUse…: Google-hosted tools with no Codex equivalent
    if web_search:
        tools.append({"type": "web_search"})
    return tools, names


def apply_tool_config(codex: dict[str, Any], tool_config: Any, names: list[str]) -> None:
    if tool_config is not None and not isinstance(tool_config, dict):
        raise BadRequest("toolConfig must be an object")
    config = pick(tool_config, "functionCallingConfig")
    if config is None:
        return
    if not isinstance(config, dict):
        raise BadRequest("toolConfig.functionCallingConfig must be an object")
    mode = str(config.get("mode") or "AUTO").upper()
    allowed = pick(config, "allowedFunctionNames")
    if isinstance(allowed, list) and allowed and mode != "NONE":
        # Gemini restricts the callable set; the Responses equivalent is offering only those tools.
        keep = {n for n in allowed if n in names}
        codex["tools"] = [t for t in codex["tools"] if t.get("type") != "function" or t["name"] in keep]
        if mode == "ANY" and len(keep) == 1:
            codex["tool_choice"] = {"type": "function", "name": next(iter(keep))}
            return
    codex["tool_choice"] = {"NONE": "none", "ANY": "required"}.get(mode, "auto")
