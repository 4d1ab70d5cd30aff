"""OpenAI Chat Completions ⇄ Codex Responses (translation-spec.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from core.codex.catalog import EFFORTS, ModelCatalog
from core.codex.events import (
    Finished,
    ImageGenerated,
    ReasoningDelta,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallDone,
    ToolCallStarted,
    Usage,
)
from core.codex.request import (
    DEFAULT_INSTRUCTIONS,
    normalize_tool_parameters,
    prepare_schema,
    reasoning_fields,
    stable_conversation_key,
    wire_service_tier,
)
from core.config import Config
from core.turn.model import Prepared, Turn
from core.protocols.base import (
    BadRequest,
    ClientError,
    ClientRequest,
    CollectedTurn,
    DeltaStream,
    Failure,
    NotFound,
    Reply,
    expect_object,
    json_reply,
    now_seconds,
    http_status,
    random_id,
    retry_headers,
)
from core.protocols.items import pair_tool_calls, text_of_parts

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TIER_ALIASES = {"auto": None, "default": None, "priority": "priority", "fast": "priority", "flex": "flex"}


@dataclass(slots=True)
class ChatContext:
    model: str  # display model echoed to the client
    want_reasoning: bool
    include_usage: bool
    custom_tools: frozenset[str] = field(default_factory=frozenset)
    completion_id: str = field(default_factory=lambda: random_id("chatcmpl-"))
    created: int = field(default_factory=now_seconds)


# --- request ------------------------------------------------------------------------------------


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Config) -> Prepared:
    body = expect_object(request.json())
    if body.get("messages") is None and "input" in body:
        body = _responses_style_to_chat(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("Invalid request: 'messages' must be a non-empty array", code="invalid_request", param="messages")
    model_name = body.get("model")
    if model_name is not None and not isinstance(model_name, str):
        raise BadRequest("Invalid request: 'model' must be a string", code="invalid_request", param="model")
    model = catalog.resolve(model_name)
    if not model.admissible:
        raise NotFound(f"Model '{model_name}' not found", code="model_not_found", param="model")

    effort = _effort(body) or model.effort or cfg.get("model.default_reasoning_effort")
    tier = _tier(body.get("service_tier"))
    tier = tier if tier is not None else wire_service_tier(model.tier or cfg.get("model.default_service_tier"))

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
    )
    return Prepared(Turn("openai", codex, model, stream, key), context)


def _array(body: dict[str, Any], key: str) -> list[Any] | None:
    """``body[key]`` when it is an array, None when absent; anything else is refused, not ignored."""
    value = body.get(key)
    if value is not None and not isinstance(value, list):
        raise BadRequest(f"Invalid request: '{key}' must be an array", code="invalid_request", param=key)
    return value


def _effort(body: dict[str, Any]) -> str | None:
    effort = body.get("reasoning_effort")
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
            entry["parameters"] = normalize_tool_parameters(fn.get("parameters"))
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
        if kind == "function_call":
            args = item.get("arguments")
            messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": item.get("call_id") or item.get("id"), "type": "function", "function": {"name": item.get("name"), "arguments": args if isinstance(args, str) else orjson.dumps(args or {}).decode()}}]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id") or "unknown", "content": item.get("output") if isinstance(item.get("output"), str) else text_of_parts(item.get("output"))})
        elif item.get("role") in ROLES:
            content = item.get("content")
            if isinstance(content, list):
                content = [
                    {"type": "image_url", "image_url": {"url": p.get("image_url")}} if p.get("type") == "input_image" else {"type": "text", "text": p.get("text", "")}
                    for p in content
                    if isinstance(p, dict)
                ]
            messages.append({"role": item["role"], "content": content})
    out = {k: v for k, v in body.items() if k not in ("input", "instructions")}
    out["messages"] = messages
    if isinstance(body.get("reasoning"), dict) and "reasoning_effort" not in body:
        out["reasoning_effort"] = body["reasoning"].get("effort")
    return out


# --- responses ----------------------------------------------------------------------------------


def usage_payload(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    payload: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens is not None:
        payload["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        payload["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return payload


def finish_reason(finish: Finished | None, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_calls"
    if finish is not None and finish.status == "incomplete":
        return "content_filter" if finish.reason == "content_filter" else "length"
    return "stop"


def _tool_call_payload(call: ToolCallDone) -> dict[str, Any]:
    if call.kind == "custom":
        return {"id": call.call_id, "type": "custom", "custom": {"name": call.name, "input": call.arguments}}
    return {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments or "{}"}}


def _image_call_payload(image: ImageGenerated) -> dict[str, Any]:
    arguments: dict[str, Any] = {"result": image.result}
    if image.revised_prompt:
        arguments["revised_prompt"] = image.revised_prompt
    return {"id": image.item_id, "type": "function", "function": {"name": "image_generation", "arguments": orjson.dumps(arguments).decode()}}


def render_response(collected: CollectedTurn, context: ChatContext) -> Reply:
    tool_calls = [_tool_call_payload(c) for c in collected.tool_calls] + [_image_call_payload(i) for i in collected.images]
    message: dict[str, Any] = {"role": "assistant", "content": collected.full_text or None, "refusal": None}
    if context.want_reasoning and collected.reasoning:
        message["reasoning_content"] = collected.full_reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    payload = {
        "id": context.completion_id,
        "object": "chat.completion",
        "created": context.created,
        "model": context.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(collected.finish, bool(tool_calls))}],
        "usage": usage_payload(collected.usage),
    }
    return json_reply(200, payload)


class StreamTranslator(DeltaStream):
    """Codex events → ``chat.completion.chunk`` SSE frames, one upstream delta at a time."""

    def __init__(self, context: ChatContext) -> None:
        self._context = context
        head = {"id": context.completion_id, "object": "chat.completion.chunk", "created": context.created, "model": context.model}
        # Every chunk shares this prefix; only the delta is serialized per event.
        self._prefix = b"data: " + orjson.dumps(head)[:-1] + b',"choices":[{"index":0,"delta":'
        self._suffix = b',"finish_reason":null}]}\n\n'
        self._indexes: dict[str, int] = {}
        self._kinds: dict[str, str] = {}
        self._started = False

    def _chunk(self, delta: dict[str, Any]) -> bytes:
        return self._prefix + orjson.dumps(delta) + self._suffix

    def _head(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def on_text(self, delta: TextDelta) -> bytes:
        return self._head() + self._chunk({"content": delta.text})

    def on_reasoning(self, delta: ReasoningDelta) -> bytes:
        if not self._context.want_reasoning:
            return b""
        return self._head() + self._chunk({"reasoning_content": delta.text})

    def on_tool_call_started(self, delta: ToolCallStarted) -> bytes:
        head = self._head()
        index = self._indexes.setdefault(delta.call_id, len(self._indexes))
        self._kinds[delta.call_id] = delta.kind
        body = {"custom": {"name": delta.name, "input": ""}} if delta.kind == "custom" else {"function": {"name": delta.name, "arguments": ""}}
        return head + self._chunk({"tool_calls": [{"index": index, "id": delta.call_id, "type": delta.kind, **body}]})

    def on_tool_call_args(self, delta: ToolCallArgsDelta) -> bytes:
        return self._args(delta.call_id, delta.delta)

    def on_tool_call(self, delta: ToolCallDone) -> bytes:
        if not delta.had_deltas and delta.arguments:
            return self._args(delta.call_id, delta.arguments)
        return b""

    def on_image(self, delta: ImageGenerated) -> bytes:
        head = self._head()
        index = self._indexes.setdefault(delta.item_id, len(self._indexes))
        return head + self._chunk({"tool_calls": [{"index": index, **_image_call_payload(delta)}]})

    def _args(self, call_id: str, text: str) -> bytes:
        index = self._indexes.get(call_id, 0)
        if self._kinds.get(call_id) == "custom":
            return self._chunk({"tool_calls": [{"index": index, "custom": {"input": text}}]})
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": text}}]})

    def on_finished(self, delta: Finished) -> bytes:
        self._done = True
        reason = finish_reason(delta, bool(self._indexes))
        head = self._head()
        final = self._prefix + b"{}" + b',"finish_reason":"' + reason.encode() + b'"}]}\n\n'
        usage = b""
        if self._context.include_usage:
            payload = {
                "id": self._context.completion_id,
                "object": "chat.completion.chunk",
                "created": self._context.created,
                "model": self._context.model,
                "choices": [],
                "usage": usage_payload(delta.usage),
            }
            usage = b"data: " + orjson.dumps(payload) + b"\n\n"
        return head + final + usage + b"data: [DONE]\n\n"

    def error_frame(self, error: Failure) -> bytes:
        return b"data: " + orjson.dumps(error_payload(error)) + b"\n\n"  # no [DONE]: the turn did not finish


# --- errors -------------------------------------------------------------------------------------


def error_payload(error: Failure) -> dict[str, Any]:
    if isinstance(error, ClientError):
        kind = {"authentication": "invalid_request_error", "not_found": "invalid_request_error"}.get(error.kind, "invalid_request_error")
        code = error.code or {"authentication": "invalid_api_key"}.get(error.kind)
        return {"error": {"message": error.message, "type": kind, "param": error.param, "code": code}}
    status = error.status
    if status == 429:
        kind = "rate_limit_error"
    elif status in (401, 403):
        kind = "authentication_error" if status == 401 else "permission_error"
    elif status < 500:
        kind = "invalid_request_error"
    else:
        kind = "server_error"
    return {"error": {"message": error.message, "type": kind, "param": None, "code": error.code}}


def render_error(error: Failure) -> Reply:
    return json_reply(http_status(error), error_payload(error), retry_headers(error))
