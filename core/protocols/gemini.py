"""Gemini ``generateContent`` / ``streamGenerateContent`` ⇄ Codex Responses (translation-spec.md §4).

Requests arrive the way Google's SDKs write them: camelCase on the wire, but google-genai (Python)
also sends snake_case keys (``thinking_budget``, ``parameters_json_schema``), which the real API
accepts too, so every field is read in both spellings. Streams are SSE with ``?alt=sse`` and
otherwise the JSON array Google sends (``[`` … ``,`` … ``]``), written incrementally either way.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.codex.catalog import ModelCatalog, ModelInfo, ResolvedModel
from core.codex.events import Finished, ImageGenerated, ReasoningDelta, TextDelta, ToolCallDone, Usage
from core.codex.request import (
    DEFAULT_INSTRUCTIONS,
    effort_for_budget,
    json_schema_format,
    normalize_tool_parameters,
    reasoning_fields,
    stable_conversation_key,
    wire_service_tier,
)
from core.config import Config
from core.turn.model import Prepared, Turn, UpstreamEvent
from core.protocols.base import (
    BadRequest,
    ClientRequest,
    CollectedTurn,
    DeltaStream,
    Failure,
    Reply,
    expect_object,
    http_status,
    json_reply,
    random_id,
    retry_headers,
)
from core.protocols.items import CallLedger, image_url, pair_tool_calls, parse_arguments

ACTION_PATH = re.compile(r"^/(?:v1beta|v1alpha|v1)/models/(?P<model>[^/]+?):(?P<action>[A-Za-z]+)$")
GENERATE_ACTIONS = frozenset({"generateContent", "streamGenerateContent"})
GENERATION_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]
JSON_ARRAY_CONTENT_TYPE = "application/json; charset=UTF-8"

# google.rpc status names by HTTP status (what Google's own errors carry).
RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_THINKING_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
# Text-like inline data is read as text: the backend has no generic file part for it.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml", "application/javascript")
_JSON_SCHEMA_FORMATS = frozenset({"date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uri", "uuid"})
_WEB_SEARCH_TOOLS = ("googleSearch", "googleSearchRetrieval")


@functools.cache
def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


@functools.cache
def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def pick(obj: Any, camel: str) -> Any:
    """``obj[camel]``, or its snake_case spelling (both are valid protobuf JSON)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return value if value is not None else obj.get(_snake(camel))


@dataclass(slots=True)
class GeminiContext:
    model: str  # the model name from the URL, echoed as modelVersion
    sse: bool = True
    include_thoughts: bool = False
    response_id: str = field(default_factory=lambda: random_id("", 12))


# --- request ------------------------------------------------------------------------------------


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Config) -> Prepared:
    match = ACTION_PATH.match(request.path)
    if match is None or match["action"] not in GENERATE_ACTIONS:
        raise BadRequest(f"Invalid action in {request.path}: use :generateContent or :streamGenerateContent")
    url_model = match["model"]
    body = expect_object(request.json())
    if "generateContentRequest" in body or "generate_content_request" in body:  # the countTokens wrapper shape
        body = expect_object(pick(body, "generateContentRequest"), "generateContentRequest")
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
    effort = effort or model.effort or cfg.get("model.default_reasoning_effort")
    if include_thoughts and not effort:
        info = catalog.get(model.id)
        effort = (info.default_effort if info else None) or "medium"  # thoughts need a reasoning summary

    tools, names = _tools(pick(body, "tools"))
    codex: dict[str, Any] = {
        "model": model.id,
        "instructions": instructions or DEFAULT_INSTRUCTIONS,
        "input": items,
        "tools": tools,
        **reasoning_fields(effort),
    }
    _apply_tool_config(codex, pick(body, "toolConfig"), names)
    if tier := wire_service_tier(model.tier or cfg.get("model.default_service_tier")):
        codex["service_tier"] = tier
    if (fmt := _response_format(generation)) is not None:
        codex["text"] = {"format": fmt}

    key = request.headers.get("x-conversation-id") or request.headers.get("x-session-id")
    if not (key and key.strip()):
        key = stable_conversation_key(model.id, instructions, items)
    stream = match["action"] == "streamGenerateContent" or request.query.get("alt") == "sse"
    context = GeminiContext(model=url_model, sse=request.query.get("alt") == "sse", include_thoughts=include_thoughts)
    return Prepared(Turn("gemini", codex, model, stream, key.strip() if key else None), context)


def _thinking_effort(thinking: Any) -> str | None:
    level = pick(thinking, "thinkingLevel")
    if isinstance(level, str) and level.lower() in _THINKING_LEVELS:
        return _THINKING_LEVELS[level.lower()]
    return effort_for_budget(pick(thinking, "thinkingBudget"))


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):  # lenient: a bare string is one text part
        return [{"text": content}]
    if not isinstance(content, dict):
        raise BadRequest(f"{where} must be an object with 'parts'")
    parts = content.get("parts")
    if isinstance(parts, dict):
        parts = [parts]
    if not isinstance(parts, list) or not parts:
        raise BadRequest(f"{where}.parts must be a non-empty array")
    if not all(isinstance(p, dict) for p in parts):
        raise BadRequest(f"{where}.parts entries must be objects")
    return parts


def translate_contents(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """``systemInstruction`` and ``contents`` as Codex instructions and input items."""
    system = pick(body, "systemInstruction")
    instructions = ""
    if system is not None:
        instructions = "\n".join(p["text"] for p in _parts(system, "systemInstruction") if isinstance(p.get("text"), str) and not p.get("thought"))
    contents = body.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise BadRequest("contents must be a non-empty array")
    ledger = CallLedger()
    items: list[dict[str, Any]] = []
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        parts = _parts(content, where)
        role = content.get("role") if isinstance(content, dict) else "user"
        if role == "model":
            items += _model_items(parts, ledger)
        elif role in (None, "", "user", "function", "tool"):
            items += _user_items(parts, ledger, where)
        else:
            raise BadRequest(f"{where}.role must be 'user' or 'model', not {role!r}")
    return instructions.strip(), pair_tool_calls(items)


def _model_items(parts: list[dict[str, Any]], ledger: CallLedger) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "".join(texts)}]})
            texts.clear()

    for part in parts:
        if part.get("thought"):
            continue  # thoughts are never replayed (the backend has its own encrypted reasoning)
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(call := pick(part, "functionCall"), dict):
            flush()
            name = str(call.get("name") or "")
            args = call.get("args")
            items.append({
                "type": "function_call",
                "call_id": ledger.call(call.get("id"), name),
                "name": name,
                "arguments": orjson.dumps(args if args is not None else {}).decode(),
            })
    flush()
    return items


def _user_items(parts: list[dict[str, Any]], ledger: CallLedger, where: str) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    follow_up: list[dict[str, Any]] = []  # media returned by tools, shown to the model as a user turn
    for part in parts:
        if part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            content.append({"type": "input_text", "text": part["text"]})
        elif isinstance(inline := pick(part, "inlineData"), dict):
            content.append(_inline_part(inline, where))
        elif isinstance(file := pick(part, "fileData"), dict):
            content.append(_file_part(file, where))
        elif isinstance(response := pick(part, "functionResponse"), dict):
            name = str(response.get("name") or "")
            output = _function_output(response.get("response"))
            call_id = ledger.result(response.get("id"), name)
            if call_id is None:  # answers no call we know of: keep it as context rather than fail
                content.append({"type": "input_text", "text": f"[{name} result] {output}"})
            else:
                outputs.append({"type": "function_call_output", "call_id": call_id, "output": output})
            for media in response.get("parts") or ():
                if isinstance(media, dict) and isinstance(inline := pick(media, "inlineData"), dict):
                    follow_up.append(_inline_part(inline, where))
        # executableCode, codeExecutionResult, videoMetadata…: nothing the backend can take
    items: list[dict[str, Any]] = list(outputs)
    if content or not outputs:
        items.append({"type": "message", "role": "user", "content": content or [{"type": "input_text", "text": ""}]})
    if follow_up:
        items.append({"type": "message", "role": "user", "content": follow_up})
    return items


def _function_output(response: Any) -> str:
    """Tool results as text. ``{"output": "..."}`` (Gemini CLI, the SDK's automatic function
    calling) is unwrapped; anything else is sent as JSON."""
    if isinstance(response, dict) and len(response) == 1:
        ((key, value),) = response.items()
        if key in ("output", "result", "content") and isinstance(value, str):
            return value
    return orjson.dumps(response if response is not None else {}).decode()


def _inline_part(inline: dict[str, Any], where: str) -> dict[str, Any]:
    mime = str(pick(inline, "mimeType") or "application/octet-stream").lower()
    data = inline.get("data")
    if not isinstance(data, str):
        raise BadRequest(f"{where}: inlineData.data must be base64 text")
    if mime.startswith("image/"):
        return {"type": "input_image", "image_url": image_url(data, mime)}
    if mime.startswith(_TEXT_TYPES):
        try:
            return {"type": "input_text", "text": base64.b64decode(data).decode("utf-8", "replace")}
        except (binascii.Error, ValueError):
            raise BadRequest(f"{where}: inlineData.data is not valid base64") from None
    if mime.startswith(("audio/", "video/")):
        raise BadRequest(f"{where}: {mime} input is not supported (the Codex backend takes text, images and documents)")
    name = pick(inline, "displayName") or ("document.pdf" if mime == "application/pdf" else "file")
    return {"type": "input_file", "filename": str(name), "file_data": f"data:{mime};base64,{data}"}


def _file_part(file: dict[str, Any], where: str) -> dict[str, Any]:
    uri = str(pick(file, "fileUri") or "")
    mime = str(pick(file, "mimeType") or "").lower()
    if not uri.startswith(("https://", "http://")) or "generativelanguage.googleapis.com" in uri:
        raise BadRequest(f"{where}: fileData {uri!r} cannot be read here (Files API and Cloud Storage URIs are Google-only); send the file as inlineData")
    if mime.startswith("image/"):
        return {"type": "input_image", "image_url": uri}
    return {"type": "input_file", "file_url": uri}


def openapi_to_json_schema(node: Any) -> Any:
    """Gemini's OpenAPI-style ``Schema`` (``type: "OBJECT"``, ``nullable``, ``propertyOrdering``,
    ``defs``/``ref``) as the JSON Schema the backend expects."""
    if isinstance(node, list):
        return [openapi_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for raw_key, value in node.items():
        key = _camel(raw_key)
        if key in ("propertyOrdering", "example", "nullable"):
            continue
        if key == "type":
            if isinstance(value, str) and value.upper() != "TYPE_UNSPECIFIED":
                out["type"] = value.lower()
        elif key == "format":
            if value in _JSON_SCHEMA_FORMATS:
                out["format"] = value
        elif key in ("properties", "defs") and isinstance(value, dict):
            out["$defs" if key == "defs" else key] = {name: openapi_to_json_schema(s) for name, s in value.items()}
        elif key == "ref" and isinstance(value, str):
            out["$ref"] = value.replace("#/defs/", "#/$defs/")
        elif key in ("items", "anyOf", "additionalProperties"):
            out[key] = openapi_to_json_schema(value)
        else:
            out[key] = value
    if pick(node, "nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


_OPENAPI_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})


def lowercase_types(node: Any) -> Any:
    """A JSON Schema with Gemini's uppercase type names (``"OBJECT"``) lowercased. Gemini accepts
    them in ``responseJsonSchema`` and ``parametersJsonSchema`` too, and Gemini CLI sends them
    there; JSON Schema (and the backend) knows only lowercase."""
    if isinstance(node, list):
        return [lowercase_types(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {key: lowercase_types(value) for key, value in node.items()}
    kind = node.get("type")
    if isinstance(kind, str) and kind in _OPENAPI_TYPES:
        out["type"] = kind.lower()
    elif isinstance(kind, list):
        out["type"] = [k.lower() if isinstance(k, str) and k in _OPENAPI_TYPES else k for k in kind]
    return out


def _tools(groups: Any) -> tuple[list[dict[str, Any]], list[str]]:
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


def _apply_tool_config(codex: dict[str, Any], tool_config: Any, names: list[str]) -> None:
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


def _response_format(generation: dict[str, Any]) -> dict[str, Any] | None:
    if str(pick(generation, "responseMimeType") or "").lower() != "application/json":
        return None
    schema = lowercase_types(pick(generation, "responseJsonSchema"))
    if schema is None and isinstance(pick(generation, "responseSchema"), dict):
        schema = openapi_to_json_schema(pick(generation, "responseSchema"))
    if not isinstance(schema, dict) or not schema:
        return {"type": "json_object"}
    return json_schema_format("gemini_schema", schema)


# --- responses ----------------------------------------------------------------------------------


def finish_reason(finish: Finished | None) -> str:
    if finish is None or finish.status != "incomplete":
        return "STOP"
    return {"max_output_tokens": "MAX_TOKENS", "content_filter": "SAFETY"}.get(finish.reason or "", "OTHER")


def usage_metadata(usage: Usage | None) -> dict[str, Any] | None:
    """Gemini counts thoughts apart from the answer: candidates + thoughts = Codex output tokens."""
    if usage is None:
        return None
    thoughts = usage.reasoning_tokens or 0
    meta: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(0, usage.output_tokens - thoughts),
        "totalTokenCount": usage.total_tokens,
    }
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def _call_part(call: ToolCallDone) -> dict[str, Any] | None:
    args = parse_arguments(call.arguments)
    if args is None:
        return None
    return {"functionCall": {"id": call.call_id, "name": call.name, "args": args}}


def _image_part(image: ImageGenerated) -> dict[str, Any]:
    return {"inlineData": {"mimeType": f"image/{image.output_format or 'png'}", "data": image.result}}


def _response(context: GeminiContext, parts: list[dict[str, Any]], finish: str | None = None, usage: Usage | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    payload: dict[str, Any] = {"candidates": [candidate]}
    if finish and (meta := usage_metadata(usage)) is not None:
        payload["usageMetadata"] = meta
    payload["modelVersion"] = context.model
    payload["responseId"] = context.response_id
    return payload


def render_response(collected: CollectedTurn, context: GeminiContext) -> Reply:
    parts: list[dict[str, Any]] = []
    if context.include_thoughts and collected.reasoning:
        parts.append({"text": collected.full_reasoning, "thought": True})
    if collected.text:
        parts.append({"text": collected.full_text})
    calls = [_call_part(c) for c in collected.tool_calls]
    parts += [c for c in calls if c is not None]
    parts += [_image_part(i) for i in collected.images]
    finish = finish_reason(collected.finish)
    if None in calls and not any(calls):
        finish = "MALFORMED_FUNCTION_CALL"
    return json_reply(200, _response(context, parts or [{"text": ""}], finish, collected.usage))


class StreamTranslator(DeltaStream):
    """Codex events → ``GenerateContentResponse`` chunks, as SSE (``alt=sse``) or a JSON array."""

    def __init__(self, context: GeminiContext) -> None:
        self._context = context
        self._sse = context.sse
        self.content_type = "text/event-stream" if self._sse else JSON_ARRAY_CONTENT_TYPE
        self._opened = False  # JSON array: "[" written
        self._calls = 0
        self._malformed = False

    def _frame(self, payload: dict[str, Any]) -> bytes:
        data = orjson.dumps(payload)
        if self._sse:
            return b"data: " + data + b"\r\n\r\n"
        prefix = b",\r\n" if self._opened else b"["
        self._opened = True
        return prefix + data

    def _chunk(self, parts: list[dict[str, Any]]) -> bytes:
        return self._frame(_response(self._context, parts))

    def on_text(self, delta: TextDelta) -> bytes:
        return self._chunk([{"text": delta.text}])

    def on_reasoning(self, delta: ReasoningDelta) -> bytes:
        return self._chunk([{"text": delta.text, "thought": True}]) if self._context.include_thoughts else b""

    def on_tool_call(self, delta: ToolCallDone) -> bytes:
        part = _call_part(delta)
        if part is None:
            self._malformed = True
            return b""
        self._calls += 1
        return self._chunk([part])  # Gemini sends a call whole, never partial args

    def on_image(self, delta: ImageGenerated) -> bytes:
        return self._chunk([_image_part(delta)])

    def on_finished(self, delta: Finished) -> bytes:
        self._done = True
        reason = "MALFORMED_FUNCTION_CALL" if self._malformed and not self._calls else finish_reason(delta)
        # An empty text part rather than no parts: SDK users print ``chunk.text`` on every chunk.
        final = self._frame(_response(self._context, [{"text": ""}], reason, delta.usage))
        return final if self._sse else final + b"]"

    def keepalive(self) -> bytes:
        # Whitespace only: SSE comments break both google-genai parsers (Python raises on the
        # line, JS stalls on it); whitespace is also valid anywhere in the JSON array.
        return b"\r\n"

    def error_frame(self, error: Failure) -> bytes:
        frame = self._frame(error_payload(error))
        return frame if self._sse else frame + b"]"


# --- models -------------------------------------------------------------------------------------


def model_entry(info: ModelInfo, name: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"models/{name or info.id}",
        "baseModelId": info.id,
        "version": info.id,
        "displayName": info.display_name if name in (None, info.id) else f"{name} (served by {info.id})",
        "description": info.description,
    }
    if info.context_window:
        entry["inputTokenLimit"] = info.context_window
    if info.max_output_tokens:
        entry["outputTokenLimit"] = info.max_output_tokens
    entry["supportedGenerationMethods"] = GENERATION_METHODS
    entry["thinking"] = bool(info.efforts)
    return entry


def resolved_entry(catalog: ModelCatalog, name: str) -> dict[str, Any]:
    """``GET models/{name}``: any name generateContent would serve, described by the model serving it."""
    model: ResolvedModel = catalog.resolve(name)
    info = catalog.get(model.id) or ModelInfo(id=model.id, display_name=model.id)
    return model_entry(info, name)


def count_tokens(request: ClientRequest, catalog: ModelCatalog, cfg: Config) -> Reply:
    """``:countTokens``: an estimate (about four characters a token, 258 a picture, as Gemini counts
    images); the backend has no tokenizer endpoint. Clients use it for budgeting only. The model
    and settings do not change the estimate."""
    body = expect_object(request.json())
    if "generateContentRequest" in body or "generate_content_request" in body:
        body = expect_object(pick(body, "generateContentRequest"), "generateContentRequest")
    instructions, items = translate_contents(body)
    text = len(instructions)
    images = 0
    for item in items:
        for part in item.get("content") or ():
            images += part.get("type") == "input_image"
            text += len(part.get("text") or "")
        text += len(item.get("output") or "") + len(item.get("arguments") or "")
    return json_reply(200, {"totalTokens": max(1, text // 4) + 258 * images})


# --- errors -------------------------------------------------------------------------------------


def error_payload(error: Failure) -> dict[str, Any]:
    status = http_status(error)
    rpc = RPC_STATUS.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    body: dict[str, Any] = {"code": status, "message": error.message, "status": rpc}
    retry_after = getattr(error, "retry_after", None)
    if retry_after:  # Gemini CLI waits for RetryInfo before retrying a 429
        body["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{max(1, round(retry_after))}s"}]
    return {"error": body}


def render_error(error: Failure) -> Reply:
    payload = error_payload(error)
    return json_reply(payload["error"]["code"], payload, retry_headers(error))
