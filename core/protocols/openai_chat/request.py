"""A Chat Completions body as a Codex turn."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.catalog import EFFORTS, ModelCatalog, ResolvedModel
from core.codex.request import (
    DEFAULT_INSTRUCTIONS,
    prepare_schema,
    reasoning_fields,
    stable_conversation_key,
    wire_service_tier,
)
from core.protocols.base import BadRequest, ClientRequest, NotFound, expect_object, sampling_of
from core.protocols.items import text_of_parts
from core.protocols.openai_chat.messages import ROLES, messages_to_items, tools_to_codex
from core.protocols.openai_chat.response import ChatContext
from core.settings import Settings
from core.turn.model import Prepared, Turn

_TIER_ALIASES = {"auto": None, "default": None, "priority": "priority", "fast": "priority", "flex": "flex"}


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Prepared:
    body = expect_object(request.json())
    responses_style = body.get("messages") is None and "input" in body
    if responses_style:
        body = _responses_style_to_chat(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("Invalid request: 'messages' must be a non-empty array", code="invalid_request", param="messages")
    model = resolve_model(body, catalog)
    effort = reasoning_effort(body, model, catalog, cfg)
    tier = _tier(body.get("service_tier"))
    tier = tier if tier is not None else wire_service_tier(model.tier or cfg.model.default_service_tier)

    tools, custom_tools = tools_to_codex(_array(body, "tools") or _array(body, "functions"))
    instructions, items = messages_to_items(messages, custom_tools)
    codex: dict[str, Any] = {
        "model": model.id,
        "instructions": instructions or DEFAULT_INSTRUCTIONS,
        "input": items,
        "tools": tools,
        **reasoning_fields(effort),
    }
    if (choice := _tool_choice(body.get("tool_choice"))) is not None:
        codex["tool_choice"] = choice
    if isinstance(body.get("parallel_tool_calls"), bool):
        codex["parallel_tool_calls"] = body["parallel_tool_calls"]
    if tier:
        codex["service_tier"] = tier
    if (fmt := _response_format(body.get("response_format"))) is not None:
        codex["text"] = {"format": fmt}

    user = body.get("user")
    key = user.strip() if isinstance(user, str) and user.strip() else stable_conversation_key(model.id, instructions, items)
    stream = body.get("stream") is True
    options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
    context = ChatContext(
        model=model.display,
        want_reasoning=bool(effort),
        include_usage=bool(options.get("include_usage")),
        custom_tools=custom_tools,
        custom_as_function=responses_style or request.headers.get("user-agent", "").lower().startswith("cursor"),
    )
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    sampling = sampling_of(limit, body.get("temperature"), body.get("top_p"), body.get("stop"))
    return Prepared(Turn("openai", codex, model, stream, key, sampling=sampling), context)


def _array(body: dict[str, Any], key: str) -> list[Any] | None:
    """``body[key]`` when it is an array, None when absent; anything else is refused, not ignored."""
    value = body.get(key)
    if value is not None and not isinstance(value, list):
        raise BadRequest(f"Invalid request: '{key}' must be an array", code="invalid_request", param=key)
    return value


def resolve_model(body: dict[str, Any], catalog: ModelCatalog) -> ResolvedModel:
    """``body["model"]`` in the catalog (the default one when absent); the legacy Completions
    route resolves its model so too."""
    model_name = body.get("model")
    if model_name is not None and not isinstance(model_name, str):
        raise BadRequest("Invalid request: 'model' must be a string", code="invalid_request", param="model")
    model = catalog.resolve(model_name)
    if not model.admissible:
        raise NotFound(f"Model '{model_name}' not found", code="model_not_found", param="model")
    return model


def reasoning_effort(body: dict[str, Any], model: ResolvedModel, catalog: ModelCatalog, cfg: Settings) -> str | None:
    """The effort asked for, else the model's or the configured default. One the model lacks (Kilo
    always sends "minimal") moves to its nearest level instead of failing the turn."""
    return catalog.supported_effort(model.id, _effort(body)) or model.effort or cfg.model.default_reasoning_effort


def _effort(body: dict[str, Any]) -> str | None:
    effort = body.get("reasoning_effort", body.get("reasoningEffort"))  # opencode's camelCase too
    if effort is None and isinstance(body.get("reasoning"), dict):
        effort = body["reasoning"].get("effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise BadRequest(f"Invalid request: reasoning_effort must be one of {', '.join(EFFORTS)}", code="invalid_request", param="reasoning_effort")
    return effort


def _tier(value: Any) -> str | None:
    if value is None:
        return None
    if value not in _TIER_ALIASES:
        raise BadRequest("Invalid request: service_tier must be auto, default, fast, priority or flex", code="invalid_request", param="service_tier")
    return _TIER_ALIASES[value]


def _tool_choice(choice: Any) -> Any:
    if choice is None:
        return None
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            name = (choice.get("function") or {}).get("name") or choice.get("name")
            return {"type": "function", "name": name}
        if kind == "custom":
            return {"type": "custom", "name": (choice.get("custom") or {}).get("name") or choice.get("name")}
        if kind in ("web_search", "web_search_preview"):
            return {"type": "web_search"}
    raise BadRequest("Invalid request: unsupported tool_choice", code="invalid_request", param="tool_choice")


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        spec = fmt["json_schema"]
        out: dict[str, Any] = {"type": "json_schema", "name": spec.get("name") or "response", "schema": prepare_schema(spec.get("schema") or {})}
        if "strict" in spec:
            out["strict"] = bool(spec["strict"])
        return out
    return None


def _responses_style_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """Cursor sometimes sends a Responses body to the chat endpoint; read it as chat messages."""
    raw = body["input"]
    if not isinstance(raw, (str, list)):
        raise BadRequest("Invalid request: 'input' must be a string or an array of items", code="invalid_request", param="input")
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    for item in [{"role": "user", "content": raw}] if isinstance(raw, str) else raw:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in ("input_text", "output_text"):  # a bare text item: the user's words
            messages.append({"role": "user", "content": str(item.get("text") or "")})
        elif kind == "custom_tool_call":
            call = {"name": item.get("name"), "input": item.get("input") if isinstance(item.get("input"), str) else ""}
            messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": item.get("call_id") or item.get("id"), "type": "custom", "custom": call}]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output", item.get("content"))
            messages.append({"role": "tool", "tool_call_id": item.get("call_id") or item.get("id") or "unknown",
                             "content": output if isinstance(output, str) else text_of_parts(output)})
        elif kind == "function_call":
            args = item.get("arguments")
            messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": item.get("call_id") or item.get("id"), "type": "function", "function": {"name": item.get("name"), "arguments": args if isinstance(args, str) else orjson.dumps(args or {}).decode()}}]})
        elif item.get("role") in ROLES:
            content = item.get("content")
            if isinstance(content, list):
                content = [
                    {"type": "image_url", "image_url": {"url": p.get("image_url") or p.get("url")}} if p.get("type") == "input_image" else {"type": "text", "text": p.get("text", "")}
                    for p in content
                    if isinstance(p, dict)
                ]
            messages.append({"role": item["role"], "content": content})
    out = {k: v for k, v in body.items() if k not in ("input", "instructions")}
    out["messages"] = messages
    if isinstance(body.get("reasoning"), dict) and "reasoning_effort" not in body:
        out["reasoning_effort"] = body["reasoning"].get("effort")
    return out
