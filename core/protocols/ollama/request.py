"""Ollama ``/api/chat`` and ``/api/generate`` bodies as Codex turns."""

from __future__ import annotations

import re
from typing import Any

import orjson

from core.codex.catalog import EFFORTS, ModelCatalog, ResolvedModel
from core.codex.request import (
    DEFAULT_INSTRUCTIONS,
    json_schema_format,
    reasoning_fields,
    stable_conversation_key,
    wire_service_tier,
)
from core.protocols.base import BadRequest, ClientRequest, NotFound, expect_object, sampling_of
from core.protocols.items import CallLedger, image_url
from core.protocols.ollama.response import DEFAULT_KEEP_ALIVE, OllamaContext
from core.protocols.openai_chat.messages import messages_to_items, tools_to_codex
from core.settings import Settings
from core.turn.model import Prepared, Turn

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Prepared:
    """``/api/chat`` or ``/api/generate``, told apart by the path (the context's ``kind`` keeps
    which). ``Prepared.turn`` is None for a load-only request (no messages, no prompt): Ollama
    answers it at once (``render_load``)."""
    parse = _PARSERS.get(request.path)
    if parse is None:
        raise NotFound(f"unsupported path: {request.method} {request.path}")
    return parse(request, catalog, cfg)


def _begin(request: ClientRequest, catalog: ModelCatalog, cfg: Settings, kind: str) -> tuple[dict[str, Any], ResolvedModel, str | None, OllamaContext]:
    """What chat and generate requests share: the body, the model, the effort and the answer's context."""
    body = expect_object(request.json())
    name, model = resolve_model(body, catalog)
    effort, want_thinking = _think(body.get("think"), model, catalog, cfg)
    return body, model, effort, OllamaContext(name, model.id, kind, want_thinking, _keep_alive(body.get("keep_alive")))


def _parse_chat(request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Prepared:
    body, model, effort, context = _begin(request, catalog, cfg, "chat")
    messages = body.get("messages")
    if messages is None or messages == []:
        return Prepared(None, context)
    if not isinstance(messages, list):
        raise BadRequest("messages must be an array")
    instructions, items = messages_to_items(_chat_messages(messages), frozenset())
    tools, _ = tools_to_codex(body.get("tools"))
    return Prepared(_turn(body, model, instructions or DEFAULT_INSTRUCTIONS, items, tools, effort, cfg), context)


def _parse_generate(request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Prepared:
    body, model, effort, context = _begin(request, catalog, cfg, "generate")
    prompt = body.get("prompt")
    images = _images(body.get("images"))
    if prompt is not None and not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    if not prompt and not images:
        return Prepared(None, context)
    if body.get("suffix"):
        raise BadRequest(f"{context.model!r} does not support insert")  # Ollama's answer for models without fill-in-the-middle
    raw = body.get("raw") is True
    system = body.get("system") if isinstance(body.get("system"), str) else ""
    if raw and (system or body.get("template") or body.get("context")):
        raise BadRequest("raw mode does not support template, system, or context")
    content: list[dict[str, Any]] = [{"type": "input_text", "text": prompt or ""}]
    content += [{"type": "input_image", "image_url": url} for url in images]
    items = [{"type": "message", "role": "user", "content": content}]
    instructions = "" if raw else system or DEFAULT_INSTRUCTIONS  # raw: no system prompt of ours either
    return Prepared(_turn(body, model, instructions, items, [], effort, cfg), context)


_PARSERS = {"/api/chat": _parse_chat, "/api/generate": _parse_generate}


def resolve_model(body: dict[str, Any], catalog: ModelCatalog) -> tuple[str, ResolvedModel]:
    name = body.get("model") if body.get("model") is not None else body.get("name")  # "name": Ollama's old spelling
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("model is required")
    name = name.strip()
    model = catalog.resolve(name.removesuffix(":latest"))
    if not model.admissible:
        raise NotFound(f"model '{name}' not found")
    return name, model


def _turn(body: dict[str, Any], model: ResolvedModel, instructions: str, items: list[dict[str, Any]],
          tools: list[dict[str, Any]], effort: str | None, cfg: Settings) -> Turn:
    codex: dict[str, Any] = {"model": model.id, "instructions": instructions, "input": items, "tools": tools, **reasoning_fields(effort)}
    if fmt := _format(body.get("format")):
        codex["text"] = {"format": fmt}
    if tier := wire_service_tier(model.tier or cfg.model.default_service_tier):
        codex["service_tier"] = tier
    stream = body.get("stream") is not False  # Ollama streams unless told otherwise
    options = body.get("options") if isinstance(body.get("options"), dict) else {}
    sampling = sampling_of(options.get("num_predict"), options.get("temperature"), options.get("top_p"), options.get("stop"))
    return Turn("ollama", codex, model, stream, stable_conversation_key(model.id, instructions, items), sampling=sampling)


def _think(value: Any, model: ResolvedModel, catalog: ModelCatalog, cfg: Settings) -> tuple[str | None, bool]:
    """Ollama's ``think`` as (reasoning effort, return thinking?). ``false`` asks for the least
    thinking the model allows; ``true`` for its default; a level for that level."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if value is None:
        return model.effort or cfg.model.default_reasoning_effort, False
    if value is False:
        return catalog.supported_effort(model.id, "none"), False
    if value is True:
        info = catalog.get(model.id)
        return model.effort or (info.default_effort if info else None) or "medium", True
    if isinstance(value, str) and value.lower() in EFFORTS:
        return catalog.supported_effort(model.id, value.lower()), True
    raise BadRequest(f"invalid think value {value!r}: use true, false, \"low\", \"medium\" or \"high\"")


def _keep_alive(value: Any) -> float:
    """Seconds (Ollama takes a number of seconds or a duration such as "10m"; negative = forever)."""
    if isinstance(value, bool) or value is None:
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match[2]]
    else:
        raise BadRequest(f"invalid keep_alive {value!r}")
    return float("inf") if seconds < 0 else seconds


def _images(images: Any) -> list[str]:
    if images is None:
        return []
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise BadRequest("images must be an array of base64-encoded images")
    return [image_url(i) for i in images]


def _chat_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Ollama messages as OpenAI Chat messages. Ollama's tool calls carry ids only since 0.12 and
    tool results often just a ``tool_name``: the ledger gives calls stable ids and pairs results."""
    ledger = CallLedger()
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{index}] must be an object")
        role = str(message.get("role") or "").lower()
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise BadRequest(f"messages[{index}].content must be a string")
        content = content or ""
        if role == "system":
            out.append({"role": "system", "content": content})
        elif role == "user":
            images = _images(message.get("images"))
            parts: Any = content
            if images:
                parts = ([{"type": "text", "text": content}] if content else []) + [
                    {"type": "image_url", "image_url": {"url": url}} for url in images]
            out.append({"role": "user", "content": parts})
        elif role == "assistant":
            calls = []
            if not isinstance(message.get("tool_calls") or [], list):
                raise BadRequest(f"messages[{index}].tool_calls must be an array")
            for call in message.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    raise BadRequest(f"messages[{index}].tool_calls entries need a function")
                name = str(function.get("name") or "")
                arguments = function.get("arguments")
                calls.append({"id": ledger.call(call.get("id"), name), "type": "function", "function": {
                    "name": name, "arguments": arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()}})
            out.append({"role": "assistant", "content": content, **({"tool_calls": calls} if calls else {})})
        elif role == "tool":
            name = message.get("tool_name") or message.get("name")
            call_id = ledger.result(message.get("tool_call_id"), name)
            if call_id is None:  # a result for no call we know of: keep it as context
                out.append({"role": "user", "content": f"[{name or 'tool'} result] {content}"})
            else:
                out.append({"role": "tool", "tool_call_id": call_id, "content": content})
        else:
            raise BadRequest(f"messages[{index}].role {role!r} is not one of system, user, assistant, tool")
    return out


def _format(value: Any) -> dict[str, Any] | None:
    if value in (None, ""):
        return None
    if value == "json":
        return {"type": "json_object"}
    if isinstance(value, dict):
        return json_schema_format("ollama_schema", value)
    raise BadRequest('invalid format: use "json" or a JSON schema object')
