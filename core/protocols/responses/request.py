"""A Responses body as a Codex turn: filtered to what the backend takes, little translated."""

from __future__ import annotations

from typing import Any

from core.codex.catalog import ModelCatalog
from core.codex.headers import FORWARDED_CLIENT_HEADERS
from core.codex.request import prepare_schema, reasoning_fields, stable_conversation_key, wire_service_tier
from core.protocols.base import BadRequest, ClientRequest, expect_object, sampling_of
from core.protocols.items import pair_tool_calls
from core.protocols.responses.response import ResponsesContext
from core.settings import Settings
from core.turn.model import Prepared, Turn

_REASONING_KEYS = ("type", "id", "summary", "status", "encrypted_content", "content")


# opencode's camelCase spellings of three options, read where the API's own names are absent.
_CAMEL_CASE = {"reasoningEffort": ("reasoning", "effort"), "reasoningSummary": ("reasoning", "summary"), "textVerbosity": ("text", "verbosity")}


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Settings, *, compact: bool = False) -> Prepared:
    body = _camel_case_options(expect_object(request.json()))
    previous = body.get("previous_response_id")
    if previous is not None and not (isinstance(previous, str) and previous):
        raise BadRequest("'previous_response_id' must be a response id", code="invalid_request", param="previous_response_id")
    model_name = body.get("model")
    if model_name is not None and not isinstance(model_name, str):
        raise BadRequest("'model' must be a string", code="invalid_request", param="model")
    model = catalog.resolve(model_name)
    codex: dict[str, Any] = {
        "model": model.id,
        "instructions": body["instructions"] if isinstance(body.get("instructions"), str) else "",
        "input": _input(body.get("input")),
    }
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
    effort = (reasoning or {}).get("effort") or model.effort or cfg.model.default_reasoning_effort
    if effort:
        codex.update(reasoning_fields(effort, (reasoning or {}).get("summary", "auto")))
    elif reasoning is not None:
        codex["reasoning"] = {k: v for k, v in reasoning.items() if k in ("effort", "summary") and v}
    if isinstance(body.get("include"), list):
        codex["include"] = sorted({*codex.get("include", []), *(i for i in body["include"] if isinstance(i, str))})
    tier = body.get("service_tier") if isinstance(body.get("service_tier"), str) else model.tier or cfg.model.default_service_tier
    if tier and tier not in ("auto", "default"):
        codex["service_tier"] = wire_service_tier(tier)
    if body.get("tools") is not None:
        codex["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        codex["tool_choice"] = body["tool_choice"]
    if isinstance(body.get("parallel_tool_calls"), bool):
        codex["parallel_tool_calls"] = body["parallel_tool_calls"]
    if isinstance(body.get("text"), dict):
        codex["text"] = _text(body["text"])
    if isinstance(body.get("client_metadata"), dict):
        codex["client_metadata"] = {k: v for k, v in body["client_metadata"].items() if isinstance(v, str)}

    key = body.get("prompt_cache_key") or request.headers.get("session_id") or request.headers.get("session-id")
    if not (isinstance(key, str) and key.strip()):
        key = stable_conversation_key(model.id, codex["instructions"], codex["input"])
    forwarded = {name: request.headers[name] for name in FORWARDED_CLIENT_HEADERS if request.headers.get(name)}
    stream = body.get("stream") is True and not compact
    sampling = sampling_of(body.get("max_output_tokens"), body.get("temperature"), body.get("top_p"))
    # The proxy keeps a response for previous_response_id unless the client said not to store it.
    turn = Turn("responses", codex, model, stream, key, forwarded, sampling, previous_response_id=None if compact else previous,
                keep_chain=not compact and body.get("store") is not False)
    return Prepared(turn, ResponsesContext(model.display))


def _camel_case_options(body: dict[str, Any]) -> dict[str, Any]:
    for alias, (group, name) in _CAMEL_CASE.items():
        value = body.get(alias)
        section = body.get(group) or {}
        if isinstance(value, str) and value and isinstance(section, dict):
            body[group] = {name: value, **section}
    return body


def _input(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    if not isinstance(raw, list):
        raise BadRequest("'input' must be a string or an array of items", code="invalid_request", param="input")
    items: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequest("'input' items must be objects", code="invalid_request", param="input")
        kind = item.get("type")
        if kind == "reasoning":
            # Only replayable reasoning survives: an id and a summary list are required upstream.
            if not item.get("id") or not isinstance(item.get("summary"), list):
                continue
            item = {k: item[k] for k in _REASONING_KEYS if item.get(k) not in (None, "")}
        elif kind == "compaction" and not item.get("encrypted_content"):
            continue
        elif item.get("role") == "system" and kind in (None, "message"):
            item = {**item, "role": "developer"}  # the backend rejects system-role input items
        items.append(item)
    return pair_tool_calls(items)


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be an array", code="invalid_request", param="tools")
    if not all(isinstance(tool, dict) for tool in tools):
        raise BadRequest("'tools' items must be objects", code="invalid_request", param="tools")
    return [{**tool, "type": "web_search"} if tool.get("type") == "web_search_preview" else tool for tool in tools]


def _text(text: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fmt = text.get("format")
    if isinstance(fmt, dict):
        fmt = dict(fmt)
        if isinstance(fmt.get("schema"), dict):
            fmt["schema"] = prepare_schema(fmt["schema"])
        out["format"] = fmt
    if text.get("verbosity") in ("low", "medium", "high"):
        out["verbosity"] = text["verbosity"]
    return out
