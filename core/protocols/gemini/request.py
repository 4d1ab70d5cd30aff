"""A ``generateContent`` / ``streamGenerateContent`` request as a Codex turn."""

from __future__ import annotations

import re
from typing import Any

from core.codex.catalog import ModelCatalog
from core.codex.request import (
    DEFAULT_INSTRUCTIONS,
    effort_for_budget,
    json_schema_format,
    reasoning_fields,
    stable_conversation_key,
    wire_service_tier,
)
from core.protocols.base import BadRequest, ClientRequest, expect_object, sampling_of
from core.protocols.gemini.casing import pick
from core.protocols.gemini.contents import translate_contents
from core.protocols.gemini.response import GeminiContext
from core.protocols.gemini.schema import lowercase_types, openapi_to_json_schema
from core.protocols.gemini.tools import apply_tool_config, translate_tools
from core.settings import Settings
from core.turn.model import Prepared, Turn

ACTION_PATH = re.compile(r"^/(?:v1beta|v1alpha|v1)/models/(?P<model>[^/]+?):(?P<action>[A-Za-z]+)$")
GENERATE_ACTIONS = frozenset({"generateContent", "streamGenerateContent"})
_THINKING_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Prepared:
    match = ACTION_PATH.match(request.path)
    if match is None or match["action"] not in GENERATE_ACTIONS:
        raise BadRequest(f"Invalid action in {request.path}: use :generateContent or :streamGenerateContent")
    url_model = match["model"]
    body = request_body(request)
    model = catalog.resolve(url_model)
    instructions, items = translate_contents(body)

    generation = pick(body, "generationConfig") or {}
    if not isinstance(generation, dict):
        raise BadRequest("generationConfig must be an object")
    thinking = pick(generation, "thinkingConfig") or {}
    if not isinstance(thinking, dict):
        raise BadRequest("generationConfig.thinkingConfig must be an object")
    include_thoughts = pick(thinking, "includeThoughts") is True
    effort = catalog.supported_effort(model.id, _thinking_effort(thinking))
    effort = effort or model.effort or cfg.model.default_reasoning_effort
    if include_thoughts and not effort:
        info = catalog.get(model.id)
        effort = (info.default_effort if info else None) or "medium"  # thoughts need a reasoning summary

    tools, names = translate_tools(pick(body, "tools"))
    codex: dict[str, Any] = {
        "model": model.id,
        "instructions": instructions or DEFAULT_INSTRUCTIONS,
        "input": items,
        "tools": tools,
        **reasoning_fields(effort),
    }
    apply_tool_config(codex, pick(body, "toolConfig"), names)
    if tier := wire_service_tier(model.tier or cfg.model.default_service_tier):
        codex["service_tier"] = tier
    if (fmt := _response_format(generation)) is not None:
        codex["text"] = {"format": fmt}

    key = request.headers.get("x-conversation-id") or request.headers.get("x-session-id")
    if not (key and key.strip()):
        key = stable_conversation_key(model.id, instructions, items)
    stream = match["action"] == "streamGenerateContent" or request.query.get("alt") == "sse"
    context = GeminiContext(model=url_model, sse=request.query.get("alt") == "sse", include_thoughts=include_thoughts)
    sampling = sampling_of(pick(generation, "maxOutputTokens"), pick(generation, "temperature"), pick(generation, "topP"),
                           pick(generation, "stopSequences"), pick(thinking, "thinkingBudget"))  # fmt: skip
    return Prepared(Turn("gemini", codex, model, stream, key.strip() if key else None, sampling=sampling), context)


def request_body(request: ClientRequest) -> dict[str, Any]:
    """The body as a ``GenerateContentRequest``, also when it comes in countTokens' wrapper shape."""
    body = expect_object(request.json())
    if "generateContentRequest" in body or "generate_content_request" in body:
        body = expect_object(pick(body, "generateContentRequest"), "generateContentRequest")
    return body


def _thinking_effort(thinking: Any) -> str | None:
    level = pick(thinking, "thinkingLevel")
    if isinstance(level, str) and level.lower() in _THINKING_LEVELS:
        return _THINKING_LEVELS[level.lower()]
    return effort_for_budget(pick(thinking, "thinkingBudget"))


def _response_format(generation: dict[str, Any]) -> dict[str, Any] | None:
    if str(pick(generation, "responseMimeType") or "").lower() != "application/json":
        return None
    schema = lowercase_types(pick(generation, "responseJsonSchema"))
    if schema is None and isinstance(pick(generation, "responseSchema"), dict):
        schema = openapi_to_json_schema(pick(generation, "responseSchema"))
    if not isinstance(schema, dict) or not schema:
        return {"type": "json_object"}
    return json_schema_format("gemini_schema", schema)
