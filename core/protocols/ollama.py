"""Ollama ``/api/chat`` and ``/api/generate`` ⇄ Codex Responses (translation-spec.md §6), plus the
model-info answers (``/api/tags``, ``/api/show``, ``/api/ps``) built from the catalog.

Chat messages are rewritten into OpenAI Chat messages (Ollama's tool format already is OpenAI's)
and handed to the Chat translator's helpers, so both protocols build Codex input one way. Answers
follow real Ollama: NDJSON lines, a final line with ``done``/``done_reason`` and measured counts
(never a repeat of the reply), and ``{"error": ...}`` when the upstream fails mid-stream.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from core.codex.catalog import EFFORTS, ModelCatalog, ModelInfo, ResolvedModel
from core.codex.events import Finished, ReasoningDelta, TextDelta, ToolCallDone, Usage
from core.codex.request import DEFAULT_INSTRUCTIONS, json_schema_format, reasoning_fields, stable_conversation_key, wire_service_tier
from core.config import Config
from core.turn.model import Prepared, Turn, UpstreamEvent
from core.protocols import openai_chat
from core.protocols.base import (
    BadRequest,
    ClientRequest,
    CollectedTurn,
    DeltaStream,
    Failure,
    NotFound,
    Reply,
    expect_object,
    http_status,
    json_reply,
    retry_headers,
)
from core.protocols.items import CallLedger, image_url, parse_arguments

NDJSON = "application/x-ndjson"
DEFAULT_KEEP_ALIVE = 300.0  # seconds a model counts as "loaded" for /api/ps, as in Ollama
DEFAULT_CONTEXT = 131072
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


@dataclass(slots=True)
class OllamaContext:
    model: str  # the name the client asked for, echoed in every answer (Ollama does)
    model_id: str  # the Codex model serving it
    kind: str  # "chat" | "generate"
    want_thinking: bool = False
    keep_alive: float = DEFAULT_KEEP_ALIVE
    started_ns: int = field(default_factory=time.monotonic_ns)


def created_at(timestamp: float | None = None) -> str:
    """A time as Ollama writes it (RFC 3339, UTC, microseconds); now by default."""
    moment = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- requests -----------------------------------------------------------------------------------


def _begin(request: ClientRequest, catalog: ModelCatalog, cfg: Config, kind: str) -> tuple[dict[str, Any], ResolvedModel, str | None, OllamaContext]:
    """What chat and generate requests share: the body, the model, the effort and the answer's context."""
    body = expect_object(request.json())
    name, model = resolve_model(body, catalog)
    effort, want_thinking = _think(body.get("think"), model, catalog, cfg)
    return body, model, effort, OllamaContext(name, model.id, kind, want_thinking, _keep_alive(body.get("keep_alive")))


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Config) -> Prepared:
    """``/api/chat`` or ``/api/generate``, told apart by the path (the context's ``kind`` keeps
    which). ``Prepared.turn`` is None for a load-only request (no messages, no prompt): Ollama
    answers it at once (``render_load``)."""
    parse = _PARSERS.get(request.path)
    if parse is None:
        raise NotFound(f"unsupported path: {request.method} {request.path}")
    return parse(request, catalog, cfg)


def _parse_chat(request: ClientRequest, catalog: ModelCatalog, cfg: Config) -> Prepared:
    body, model, effort, context = _begin(request, catalog, cfg, "chat")
    messages = body.get("messages")
    if messages is None or messages == []:
        return Prepared(None, context)
    if not isinstance(messages, list):
        raise BadRequest("messages must be an array")
    instructions, items = openai_chat.messages_to_items(_chat_messages(messages), frozenset())
    tools, _ = openai_chat.tools_to_codex(body.get("tools"))
    return Prepared(_turn(body, model, instructions or DEFAULT_INSTRUCTIONS, items, tools, effort, cfg), context)


def _parse_generate(request: ClientRequest, catalog: ModelCatalog, cfg: Config) -> Prepared:
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
          tools: list[dict[str, Any]], effort: str | None, cfg: Config) -> Turn:
    codex: dict[str, Any] = {"model": model.id, "instructions": instructions, "input": items, "tools": tools, **reasoning_fields(effort)}
    if fmt := _format(body.get("format")):
        codex["text"] = {"format": fmt}
    if tier := wire_service_tier(model.tier or cfg.get("model.default_service_tier")):
        codex["service_tier"] = tier
    stream = body.get("stream") is not False  # Ollama streams unless told otherwise
    return Turn("ollama", codex, model, stream, stable_conversation_key(model.id, instructions, items))


def _think(value: Any, model: ResolvedModel, catalog: ModelCatalog, cfg: Config) -> tuple[str | None, bool]:
    """Ollama's ``think`` as (reasoning effort, return thinking?). ``false`` asks for the least
    thinking the model allows; ``true`` for its default; a level for that level."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if value is None:
        return model.effort or cfg.get("model.default_reasoning_effort"), False
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


# --- answers ------------------------------------------------------------------------------------


def _done_reason(finish: Finished | None) -> str:
    return "length" if finish is not None and finish.reason == "max_output_tokens" else "stop"


def _metrics(context: OllamaContext, usage: Usage | None, first_output_ns: int | None) -> dict[str, Any]:
    """Ollama's counters: tokens from the backend's usage, durations (ns) measured here. "Prompt
    eval" is the wait for the first output, "eval" the rest of the generation."""
    end = time.monotonic_ns()
    first = min(max(first_output_ns or end, context.started_ns), end)
    return {
        "total_duration": end - context.started_ns,
        "prompt_eval_count": usage.input_tokens if usage else 0,
        "prompt_eval_duration": first - context.started_ns,
        "eval_count": usage.output_tokens if usage else 0,
        "eval_duration": end - first,
    }


def _tool_call(call: ToolCallDone, index: int) -> dict[str, Any] | None:
    args = parse_arguments(call.arguments)
    if args is None:
        return None
    return {"id": call.call_id, "function": {"index": index, "name": call.name, "arguments": args}}


def _line(context: OllamaContext, content: str = "", *, thinking: str | None = None,
          tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if context.kind == "generate":
        payload: dict[str, Any] = {"model": context.model, "created_at": created_at(), "response": content}
        if thinking:
            payload["thinking"] = thinking
        return payload
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"model": context.model, "created_at": created_at(), "message": message}


def render_load(context: OllamaContext) -> Reply:
    """A request with nothing to answer loads the model (Ollama's preload idiom)."""
    return json_reply(200, {**_line(context), "done": True, "done_reason": "load"})


def render_response(collected: CollectedTurn, context: OllamaContext) -> Reply:
    text = collected.full_text
    calls: list[dict[str, Any]] = []
    for call in collected.tool_calls:
        if (payload := _tool_call(call, len(calls))) is not None:
            calls.append(payload)
        else:  # arguments that are not a JSON object cannot be an Ollama tool call: show them as text
            text += call.arguments
    thinking = collected.full_reasoning if context.want_thinking else None
    payload = _line(context, text, thinking=thinking, tool_calls=calls if context.kind == "chat" else None)
    payload.update(done=True, done_reason=_done_reason(collected.finish), **_metrics(context, collected.usage, collected.first_output_ns))
    return json_reply(200, payload)


class StreamTranslator(DeltaStream):
    """Codex events → Ollama NDJSON lines, one upstream delta at a time."""

    content_type = NDJSON

    def __init__(self, context: OllamaContext) -> None:
        self._context = context
        self._calls = 0
        self._first_output_ns: int | None = None

    def _emit(self, payload: dict[str, Any]) -> bytes:
        return orjson.dumps(payload) + b"\n"

    def _progress(self, content: str = "", **extra: Any) -> bytes:
        if self._first_output_ns is None:
            self._first_output_ns = time.monotonic_ns()
        return self._emit({**_line(self._context, content, **extra), "done": False})

    def on_text(self, delta: TextDelta) -> bytes:
        return self._progress(delta.text)

    def on_reasoning(self, delta: ReasoningDelta) -> bytes:
        return self._progress(thinking=delta.text) if self._context.want_thinking else b""

    def on_tool_call(self, delta: ToolCallDone) -> bytes:
        call = _tool_call(delta, self._calls)
        if call is None:  # arguments that are not a JSON object: shown as text, as in render_response
            return self._progress(delta.arguments)
        if self._context.kind != "chat":
            return b""
        self._calls += 1
        return self._progress(tool_calls=[call])

    def on_finished(self, delta: Finished) -> bytes:
        self._done = True
        final = {**_line(self._context), "done": True, "done_reason": _done_reason(delta),
                 **_metrics(self._context, delta.usage, self._first_output_ns)}
        return self._emit(final)

    def keepalive(self) -> bytes:
        # NDJSON has no comments: an empty progress line is what Ollama itself sends while thinking.
        return self._emit({**_line(self._context), "done": False})

    def error_frame(self, error: Failure) -> bytes:
        return self._emit(error_payload(error))


# --- model information ----------------------------------------------------------------------------


def digest(model_id: str) -> str:
    return hashlib.sha256(model_id.encode()).hexdigest()


def context_length(info: ModelInfo) -> int:
    return info.context_window or info.max_context_window or DEFAULT_CONTEXT


def details(info: ModelInfo) -> dict[str, Any]:
    family = info.id.split("-", 1)[0]
    return {"parent_model": "", "format": "codex", "family": family, "families": [family],
            "parameter_size": "unknown", "quantization_level": "unknown"}


def tags_payload(catalog: ModelCatalog, modified_at: str) -> dict[str, Any]:
    return {"models": [
        {"name": m.id, "model": m.id, "modified_at": modified_at, "size": 0, "digest": digest(m.id), "details": details(m)}
        for m in catalog.list()
    ]}


def show_payload(catalog: ModelCatalog, name: str, model: ResolvedModel, modified_at: str, disable_vision: bool) -> dict[str, Any]:
    info = catalog.get(model.id) or ModelInfo(id=model.id, display_name=model.id)
    family = details(info)["family"]
    capabilities = ["completion", "tools"]
    if "image" in info.input_modalities and not disable_vision:
        capabilities.append("vision")
    if info.efforts:
        capabilities.append("thinking")
    parameters = f"num_ctx {context_length(info)}" + (f"\nreasoning {info.default_effort}" if info.default_effort else "")
    return {
        "license": "Served by codex-proxy from a ChatGPT Codex account",
        "modelfile": f"# Served by codex-proxy\nFROM {model.id}\n",
        "parameters": parameters,
        "template": "{{ .Prompt }}",
        "details": details(info),
        "model_info": {
            "general.architecture": family,
            "general.basename": model.id,
            "general.name": info.display_name,
            f"{family}.context_length": context_length(info),
        },
        "capabilities": capabilities,
        "modified_at": modified_at,
        "remote_model": model.id,
    }


def ps_entry(catalog: ModelCatalog, name: str, model_id: str, expires_at: str) -> dict[str, Any]:
    info = catalog.get(model_id) or ModelInfo(id=model_id, display_name=model_id)
    return {"name": name, "model": name, "size": 0, "digest": digest(model_id), "details": details(info),
            "expires_at": expires_at, "size_vram": 0, "context_length": context_length(info)}


# --- errors -------------------------------------------------------------------------------------


def error_payload(error: Failure) -> dict[str, Any]:
    return {"error": error.message}


def render_error(error: Failure) -> Reply:
    return json_reply(http_status(error), error_payload(error), retry_headers(error))
