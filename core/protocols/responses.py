"""Codex Responses passthrough (translation-spec.md §5): the client already speaks the backend's
language, so requests are filtered to the allow-list and events are relayed byte for byte."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from core.codex.catalog import ModelCatalog
from core.codex.headers import FORWARDED_CLIENT_HEADERS
from core.codex.request import prepare_schema, reasoning_fields, stable_conversation_key, wire_service_tier
from core.codex.sse import format_event
from core.config import Config
from core.turn.model import Prepared, Turn, UpstreamEvent
from core.protocols import openai_chat
from core.protocols.base import (
    BadRequest,
    ClientRequest,
    CollectedTurn,
    DeltaStream,
    Failure,
    Reply,
    expect_object,
    json_reply,
    random_id,
)
from core.protocols.items import pair_tool_calls

_REASONING_KEYS = ("type", "id", "summary", "status", "encrypted_content", "content")


@dataclass(slots=True)
class ResponsesContext:
    model: str


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Config, *, compact: bool = False) -> Prepared:
    body = expect_object(request.json())
    if body.get("previous_response_id"):
        raise BadRequest(
            "previous_response_id is not supported: the ChatGPT backend keeps no server-side state "
            "(store=false). Send the full conversation in 'input'.",
            code="unsupported_parameter",
            param="previous_response_id",
        )
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
    effort = (reasoning or {}).get("effort") or model.effort or cfg.get("model.default_reasoning_effort")
    if effort:
        codex.update(reasoning_fields(effort, (reasoning or {}).get("summary", "auto")))
    elif reasoning is not None:
        codex["reasoning"] = {k: v for k, v in reasoning.items() if k in ("effort", "summary") and v}
    if isinstance(body.get("include"), list):
        codex["include"] = sorted({*codex.get("include", []), *(i for i in body["include"] if isinstance(i, str))})
    tier = body.get("service_tier") if isinstance(body.get("service_tier"), str) else model.tier or cfg.get("model.default_service_tier")
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
    return Prepared(Turn("responses", codex, model, stream, key, forwarded), ResponsesContext(model.display))


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


# --- responses ----------------------------------------------------------------------------------


def _with_output(response: dict[str, Any] | None, items: list[dict[str, Any]], fallback_text: str = "") -> dict[str, Any]:
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
    response = _with_output(collected.response, collected.output_items, collected.full_text)
    response.setdefault("id", collected.response_id or random_id("resp_"))
    response.setdefault("object", "response")
    response.setdefault("model", context.model)
    response.setdefault("status", collected.finish.status if collected.finish else "completed")
    return json_reply(200, response)


class StreamTranslator(DeltaStream):
    """Relays upstream events unchanged, except the terminal one, whose empty output is filled in.
    It reads the backend's events, not their deltas, so ``feed`` is its own; the closing-frame
    guard and the keep-alive are the shared ones."""

    def __init__(self, context: ResponsesContext) -> None:
        self._items: list[dict[str, Any]] = []
        self._response_id: str | None = None

    def feed(self, event: UpstreamEvent) -> bytes:
        name = event.name
        if name == "response.output_item.done" and isinstance(event.data.get("item"), dict):
            self._items.append(event.data["item"])
        elif name == "response.created":
            self._response_id = (event.data.get("response") or {}).get("id")
        elif name in ("response.completed", "response.incomplete", "response.failed"):
            self._done = True
            if not (event.data.get("response") or {}).get("output") and self._items:
                data = {**event.data, "response": _with_output(event.data.get("response"), self._items)}
                return format_event(name, orjson.dumps(data))
        elif name == "error":
            # A bare error event (or our synthetic "stream_disconnected") becomes response.failed,
            # the terminal event Responses clients such as Codex CLI act on.
            error = event.data.get("error") if isinstance(event.data.get("error"), dict) else event.data
            self._done = True
            return self._failed({k: error.get(k) for k in ("type", "code", "message") if error.get(k) is not None})
        return format_event(name, event.raw)

    def _failed(self, error: dict[str, Any]) -> bytes:
        response = {"id": self._response_id or random_id("resp_proxy_"), "object": "response", "status": "failed",
                    "error": error, "output": self._items}
        return format_event("response.failed", orjson.dumps({"type": "response.failed", "response": response}))

    def error_frame(self, error: Failure) -> bytes:
        payload = openai_chat.error_payload(error)["error"]
        return self._failed({"type": payload["type"], "code": payload["code"], "message": payload["message"]})


def render_error(error: Failure) -> Reply:
    return openai_chat.render_error(error)
