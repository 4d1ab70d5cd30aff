"""Anthropic Messages ⇄ Codex Responses (translation-spec.md §3), so that Claude Code and the
Anthropic SDKs run unmodified against ``ANTHROPIC_BASE_URL=http://127.0.0.1:8080``.

Where the seed's behaviour (spec §3, §11) is not what an Anthropic client expects, this module
decides differently:

* Thinking round-trips. A streamed ``thinking`` block ends with a ``signature_delta`` whose
  signature carries the reasoning item (id + ``encrypted_content``); reasoning without a summary
  (or with ``thinking.display: "omitted"``, as ``claude -p`` sends) is a thinking block with empty
  text and that signature. When the client sends the block back, it is replayed upstream as a
  ``reasoning`` item (without its id, as Codex CLI does: with ``store:false`` an id refers to
  nothing). Other signatures (real Anthropic ones) and ``redacted_thinking`` are dropped. If the
  next turn lands on another account, the backend refuses the sealed reasoning; the pipeline then
  drops it and retries (``invalid_encrypted_content``).
* Block order is kept: a user turn ``[tool_result, text]`` stays in that order (the seed moved the
  text first).
* Web search: only a client-declared ``web_search_*`` tool becomes the backend's hosted search.
  Nothing is added by default, and Claude Code's own ``WebSearch`` function is left alone (it runs
  its search as a sub-request that declares ``web_search_20250305``, honouring its permissions).
* ``response.incomplete`` ends with ``stop_reason: "max_tokens"`` (``"refusal"`` for a content
  filter), never a silent ``end_turn``.
* Keep-alives are real ``event: ping`` frames; a failure after the stream began is a real
  ``event: error`` (the SDKs raise it); nothing follows it.
* Usage always carries ``cache_creation_input_tokens`` and ``cache_read_input_tokens`` (0 when
  none), as the real API does; ``input_tokens`` excludes the cached part.
* The response echoes the model name the client asked for (``claude-sonnet-4-5``), which is what
  Claude Code keys its model display and context window on; the request log records the Codex
  model that served it.
* Tool results holding images are sent as an array of ``input_text``/``input_image`` parts, the
  form Codex CLI uses for such outputs (the seed moved the images into an extra user message).
* ``speed: "fast"`` (Anthropic's fast mode) asks for the priority tier, like a ``-fast`` suffix.
* ``tool_choice: {"type":"none"}`` is accepted; ``disable_parallel_tool_use`` turns parallel calls
  off (they are on otherwise, as on Anthropic's API).
* Tools declared with ``defer_loading`` (Claude Code's tool search) are sent only once a
  ``tool_reference`` block in the conversation has loaded them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.codex.catalog import ModelCatalog, ResolvedModel
from core.codex.events import (
    Finished,
    ReasoningDelta,
    ReasoningDone,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallDone,
    ToolCallStarted,
    Usage,
)
from core.codex.request import (
    DEFAULT_INSTRUCTIONS,
    effort_for_budget,
    normalize_tool_parameters,
    reasoning_fields,
    stable_conversation_key,
    wire_service_tier,
)
from core.config import Config
from core.turn.model import Prepared, Turn, UpstreamEvent
from core.protocols.base import (
    BadRequest,
    ClientError,
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
from core.protocols.items import pair_tool_calls

BILLING_HEADER = "x-anthropic-billing-header:"  # Claude Code's per-request line; it would break prompt caching
SIGNATURE_PREFIX = "cxr1."  # our thinking signatures: cxr1.<reasoning item id>.<encrypted_content>
# Claude Code's Read tool rejects `pages: ""`, which GPT models like to send for optional fields:
# such arguments are held until complete and the empty value dropped (plus a hint in the schema).
EMPTY_STRING_OPTIONALS: dict[str, frozenset[str]] = {"Read": frozenset({"pages"})}
_PAGES_HINT = " Omit this field entirely for non-PDF files; do not pass an empty string."
_OUTPUT_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "xhigh"}
_ROLES = {"user": "user", "assistant": "assistant", "system": "developer", "developer": "developer"}
_LEGACY_SESSION = re.compile(r"_session_([0-9a-fA-F-]{36})$")


@dataclass(slots=True)
class AnthropicContext:
    model: str  # echoed to the client: the name it asked for
    want_reasoning: bool  # the request has a reasoning effort: answers carry thinking blocks
    thinking_text: bool = True  # False for thinking.display "omitted": blocks carry only the signature
    message_id: str = field(default_factory=lambda: random_id("msg_"))


def invalid(message: str, param: str | None = None) -> BadRequest:
    return BadRequest(f"Invalid request: {message}", code="invalid_request", param=param)


# --- request ------------------------------------------------------------------------------------


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Config) -> Prepared:
    body = expect_object(request.json())
    model_name = _model_name(body)
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("max_tokens: a positive integer is required", "max_tokens")
    messages = _message_list(body)
    if body.get("stream") is not None and not isinstance(body.get("stream"), bool):
        raise invalid("stream: must be a boolean", "stream")
    model = catalog.resolve(model_name)
    effort = _effort(body, model, catalog, cfg)
    thinking = body.get("thinking") if isinstance(body.get("thinking"), dict) else {}
    thinking_text = thinking.get("display") != "omitted"
    instructions = _instructions(body.get("system"))
    items = _messages(messages) or [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": ""}]}]
    tools, hosted = _tools(body.get("tools"), _loaded_tools(messages))
    codex: dict[str, Any] = {
        "model": model.id,
        "instructions": instructions or DEFAULT_INSTRUCTIONS,
        "input": items,
        "tools": tools,
        **reasoning_fields(effort, "auto" if thinking_text else None),
    }
    choice, parallel = _tool_choice(body.get("tool_choice"), hosted)
    if tools:
        codex["parallel_tool_calls"] = parallel
        if choice is not None:
            codex["tool_choice"] = choice
    speed = "fast" if body.get("speed") == "fast" else None  # Anthropic's fast mode is Codex's priority tier
    if tier := wire_service_tier(speed or model.tier or cfg.get("model.default_service_tier")):
        codex["service_tier"] = tier
    key = _conversation_key(request, body) or stable_conversation_key(model.id, instructions, items)
    context = AnthropicContext(model=model_name, want_reasoning=bool(effort), thinking_text=thinking_text)
    return Prepared(Turn("anthropic", codex, model, body.get("stream") is True, key), context)


def _model_name(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("model: a model name is required", "model")
    return model.strip()


def _message_list(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: a non-empty array is required", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{index}: must be an object", "messages")
        if not isinstance(message.get("role"), str) or not message["role"]:
            raise invalid(f"messages.{index}.role: a role is required", "messages")
        content = message.get("content")
        if not isinstance(content, (str, list)):
            raise invalid(f"messages.{index}.content: must be a string or an array of content blocks", "messages")
        if isinstance(content, list) and not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in content):
            raise invalid(f"messages.{index}.content: every content block needs a 'type'", "messages")
    return messages


def _effort(body: dict[str, Any], model: ResolvedModel, catalog: ModelCatalog, cfg: Config) -> str | None:
    """Thinking budget → ``output_config.effort`` → model-name suffix → (adaptive: the model's
    default) → config default; then clamped to what the model supports."""
    thinking = body.get("thinking")
    adaptive = False
    effort: str | None = None
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            raise invalid("thinking.type: must be 'enabled', 'disabled' or 'adaptive'", "thinking")
        budget = thinking.get("budget_tokens")
        if thinking["type"] == "enabled" and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
            raise invalid("thinking.budget_tokens: a positive integer is required when thinking is enabled", "thinking")
        if thinking["type"] != "disabled":
            effort = effort_for_budget(budget)
            adaptive = thinking["type"] == "adaptive"
    output_config = body.get("output_config")
    if effort is None and isinstance(output_config, dict):
        effort = _OUTPUT_EFFORTS.get(output_config.get("effort"))
    effort = effort or model.effort
    if effort is None and adaptive:
        info = catalog.get(model.id)
        effort = (info.default_effort if info else None) or "medium"
    effort = effort or cfg.get("model.default_reasoning_effort")
    return catalog.supported_effort(model.id, effort) if effort else None


def _instructions(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        texts = [system]
    elif isinstance(system, list):
        if not all(isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system):
            raise invalid("system: must be a string or an array of text blocks", "system")
        texts = [b["text"] for b in system]
    else:
        raise invalid("system: must be a string or an array of text blocks", "system")
    kept = ("\n".join(line for line in text.split("\n") if not line.startswith(BILLING_HEADER)).strip() for text in texts)
    return "\n\n".join(text for text in kept if text)


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        role = _ROLES.get(message["role"], "user")
        content = message["content"]
        if isinstance(content, str):
            items.append(_message_item(role, [_text_part(role, content)]))
        else:
            items.extend(_block_items(role, content))
    return pair_tool_calls(items)


def _message_item(role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": parts}


def _text_part(role: str, text: str) -> dict[str, Any]:
    return {"type": "output_text" if role == "assistant" else "input_text", "text": text}


def _block_items(role: str, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One message's blocks as Codex items, in the client's order: consecutive text/media blocks
    form one message item; tool calls, tool results and replayed reasoning stand alone."""
    items: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []

    def flush() -> None:
        if parts:
            items.append(_message_item(role, parts.copy()))
            parts.clear()

    for block in blocks:
        kind = block["type"]
        if kind == "text":
            if text := block.get("text"):
                parts.append(_text_part(role, str(text)))
        elif kind in ("image", "document"):
            if role != "assistant" and (part := _media_part(block)) is not None:
                parts.append(part)
        elif kind == "tool_use":
            flush()
            items.append({
                "type": "function_call",
                "call_id": str(block.get("id") or f"toolu_{block.get('name')}"),
                "name": str(block.get("name") or ""),
                "arguments": orjson.dumps(block.get("input") if isinstance(block.get("input"), dict) else {}).decode(),
            })
        elif kind == "tool_result":
            flush()
            items.append({"type": "function_call_output", "call_id": str(block.get("tool_use_id") or "unknown"), "output": _tool_output(block)})
        elif kind == "thinking":
            if (item := replayed_reasoning(block.get("signature"), str(block.get("thinking") or ""))) is not None:
                flush()
                items.append(item)
        # redacted_thinking (never ours), server_tool_use, web_search_tool_result and other
        # server-side blocks have no Codex input
    flush()
    return items


def _media_part(block: dict[str, Any]) -> dict[str, Any] | None:
    """An image or document block as a Codex content part (None when it has no usable source)."""
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    kind = source.get("type")
    if kind == "base64" and isinstance(source.get("data"), str):
        data_url = f"data:{source.get('media_type') or 'application/octet-stream'};base64,{source['data']}"
        if block["type"] == "image":
            return {"type": "input_image", "image_url": data_url}
        return {"type": "input_file", "filename": str(block.get("title") or "document.pdf"), "file_data": data_url}
    if kind == "url" and isinstance(source.get("url"), str):
        if block["type"] == "image":
            return {"type": "input_image", "image_url": source["url"]}
        return {"type": "input_file", "file_url": source["url"]}
    if kind == "text" and isinstance(source.get("data"), str):  # plain-text document
        return {"type": "input_text", "text": source["data"]}
    if kind == "content" and isinstance(source.get("content"), (str, list)):
        text = _plain_text(source["content"])
        return {"type": "input_text", "text": text} if text else None
    return None  # file ids of Anthropic's Files API mean nothing to the Codex backend


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(b.get("text") or "") for b in content if isinstance(b, dict) and b.get("type") == "text")


def _tool_output(block: dict[str, Any]) -> str | list[dict[str, Any]]:
    """A tool result's content: a string, or input_text/input_image parts when it holds images."""
    content = block.get("content")
    error_prefix = "Error: " if block.get("is_error") else ""
    if not isinstance(content, list):
        return error_prefix + (content if isinstance(content, str) else "")
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            parts.append({"type": "input_text", "text": str(part.get("text") or "")})
        elif part.get("type") == "image" and (image := _media_part(part)) is not None:
            parts.append(image)
        elif part.get("type") == "tool_reference":  # tool search loaded a deferred tool (sent in `tools`)
            parts.append({"type": "input_text", "text": f"Tool {part.get('tool_name')} is now available."})
    if not any(p["type"] == "input_image" for p in parts):
        return error_prefix + "\n".join(p["text"] for p in parts)
    return ([{"type": "input_text", "text": error_prefix.strip()}] if error_prefix else []) + parts


def _loaded_tools(messages: list[dict[str, Any]]) -> frozenset[str]:
    """Names of deferred tools that ``tool_reference`` blocks (tool search results) have loaded."""
    names: set[str] = set()
    for message in messages:
        for block in message["content"] if isinstance(message["content"], list) else ():
            inner = block.get("content") if block["type"] == "tool_result" else None
            for part in inner if isinstance(inner, list) else ():
                if isinstance(part, dict) and part.get("type") == "tool_reference" and isinstance(part.get("tool_name"), str):
                    names.add(part["tool_name"])
    return frozenset(names)


def _tool_list(raw: Any) -> list[dict[str, Any]]:
    """The request's ``tools``: absent is none, anything but an array of objects is refused."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise invalid("tools: must be an array of tool objects", "tools")
    return raw


def _tools(raw: Any, loaded: frozenset[str] = frozenset()) -> tuple[list[dict[str, Any]], frozenset[str]]:
    """Codex tools, and the names of the client's hosted web-search tools (for ``tool_choice``).
    A ``defer_loading`` tool is sent only once a ``tool_reference`` has loaded it (``loaded``)."""
    tools: list[dict[str, Any]] = []
    hosted: set[str] = set()
    for tool in _tool_list(raw):
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


def _tool_choice(choice: Any, hosted: frozenset[str]) -> tuple[Any, bool]:
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


def _conversation_key(request: ClientRequest, body: dict[str, Any]) -> str | None:
    """Claude Code's session id: its header, else the one inside ``metadata.user_id`` (a JSON
    object with ``session_id`` and ``device_id`` now, ``user_…_session_<uuid>`` before)."""
    if session := (request.headers.get("x-claude-code-session-id") or "").strip():
        return session
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user_id, str):
        return None
    try:
        parsed = orjson.loads(user_id)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        session, device = parsed.get("session_id"), parsed.get("device_id")
        if isinstance(session, str) and session.strip() and isinstance(device, str) and device.strip():
            return session.strip()
        return None
    match = _LEGACY_SESSION.search(user_id)
    return match.group(1) if match else None


# --- thinking signatures ---------------------------------------------------------------------------


def reasoning_signature(reasoning: ReasoningDone) -> str:
    """The signature that lets a later turn replay ``reasoning`` ("" when it is not replayable)."""
    if not reasoning.encrypted_content:
        return ""
    return f"{SIGNATURE_PREFIX}{reasoning.item_id}.{reasoning.encrypted_content}"


def replayed_reasoning(signature: Any, summary: str) -> dict[str, Any] | None:
    """The ``reasoning`` input item a thinking block's signature stands for; None for signatures
    that are not ours (real Anthropic ones, or empty)."""
    if not isinstance(signature, str) or not signature.startswith(SIGNATURE_PREFIX):
        return None
    _item_id, dot, encrypted = signature[len(SIGNATURE_PREFIX) :].partition(".")
    if not dot or not encrypted:
        return None
    return {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": summary}] if summary else [],
        "encrypted_content": encrypted,
    }


def thinking_block(reasoning: ReasoningDone, with_text: bool = True) -> dict[str, Any] | None:
    """A finished reasoning item as a whole thinking block (None when it holds nothing to show or
    to replay)."""
    text = reasoning.summary if with_text else ""
    signature = reasoning_signature(reasoning)
    if not text and not signature:
        return None
    return {"type": "thinking", "thinking": text, "signature": signature}


# --- responses ----------------------------------------------------------------------------------


def usage_payload(usage: Usage | None) -> dict[str, int]:
    """Anthropic usage: ``input_tokens`` excludes the cached part, reported separately."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    return {
        "input_tokens": usage.uncached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens or 0,
    }


def stop_reason(finish: Finished | None, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_use"
    if finish is not None and finish.status == "incomplete":
        return "refusal" if finish.reason == "content_filter" else "max_tokens"
    return "end_turn"


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


def render_response(collected: CollectedTurn, context: AnthropicContext) -> Reply:
    content: list[dict[str, Any]] = []
    if context.want_reasoning:
        blocks = [b for r in collected.reasoning_items if (b := thinking_block(r, context.thinking_text)) is not None]
        if not blocks and collected.reasoning and context.thinking_text:  # summary text without a finished item
            blocks = [{"type": "thinking", "thinking": collected.full_reasoning, "signature": ""}]
        content += blocks
    if collected.full_text:
        content.append({"type": "text", "text": collected.full_text})
    for call in collected.tool_calls:
        content.append({"type": "tool_use", "id": call.call_id, "name": call.name, "input": tool_input(call)})
    payload = {
        "id": context.message_id,
        "type": "message",
        "role": "assistant",
        "model": context.model,
        "content": content,
        "stop_reason": stop_reason(collected.finish, bool(collected.tool_calls)),
        "stop_sequence": None,
        "usage": usage_payload(collected.usage),
    }
    return json_reply(200, payload)


def _frame(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


class StreamTranslator(DeltaStream):
    """Codex events → Anthropic stream events: ``message_start``, then content blocks (thinking,
    text, one per tool call) with sequential indexes, then ``message_delta`` and ``message_stop``.
    Image results have no handler: no hosted image tool is ever declared for Anthropic clients."""

    def __init__(self, context: AnthropicContext) -> None:
        self._context = context
        self._started = False
        self._next_index = 0
        self._open: tuple[str, int] | None = None  # the thinking or text block being written
        self._tools: dict[str, int] = {}  # call id → block index
        self._open_tools: set[int] = set()
        self._held: set[str] = set()  # calls whose arguments are sent whole at the end (sanitised)

    def feed(self, event: UpstreamEvent) -> bytes:
        # message_start goes out with the first event, whatever it carries.
        if self._started:
            return DeltaStream.feed(self, event)
        head = self._head()
        return head + DeltaStream.feed(self, event)

    def on_text(self, delta: TextDelta) -> bytes:
        start = self._block("text", {"type": "text", "text": ""})
        return start + self._delta(self._index(), {"type": "text_delta", "text": delta.text})

    def on_reasoning(self, delta: ReasoningDelta) -> bytes:
        if not (self._context.want_reasoning and self._context.thinking_text):
            return b""
        if not self._is_open("thinking") and not delta.text.strip():
            return b""  # a summary-part separator before any thinking text
        start = self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        return start + self._delta(self._index(), {"type": "thinking_delta", "thinking": delta.text})

    def on_reasoning_done(self, delta: ReasoningDone) -> bytes:
        return self._end_thinking(delta) if self._context.want_reasoning else b""

    def on_tool_call_started(self, delta: ToolCallStarted) -> bytes:
        return self._start_tool(delta.call_id, delta.name)

    def on_tool_call_args(self, delta: ToolCallArgsDelta) -> bytes:
        index = self._tools.get(delta.call_id)
        if index is None or delta.call_id in self._held:
            return b""
        return self._delta(index, {"type": "input_json_delta", "partial_json": delta.delta})

    def on_tool_call(self, delta: ToolCallDone) -> bytes:
        return self._end_tool(delta)

    def keepalive(self) -> bytes:
        # message_start first: SDKs reject any event before it, and it commits nothing upstream.
        return self._head() + _frame("ping", {})

    def error_frame(self, error: Failure) -> bytes:
        return _frame("error", error_payload(error)[1])

    # --- blocks --------------------------------------------------------------------------------

    def _head(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message = {
            "id": self._context.message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._context.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_payload(None),
        }
        return _frame("message_start", {"message": message})

    def _is_open(self, kind: str) -> bool:
        return self._open is not None and self._open[0] == kind

    def _index(self) -> int:
        assert self._open is not None
        return self._open[1]

    def _start(self, block: dict[str, Any]) -> tuple[int, bytes]:
        index = self._next_index
        self._next_index += 1
        return index, _frame("content_block_start", {"index": index, "content_block": block})

    def _block(self, kind: str, empty: dict[str, Any]) -> bytes:
        """Make sure a ``kind`` block is the open one (closing another first)."""
        if self._is_open(kind):
            return b""
        closing = self._close_open()
        index, start = self._start(empty)
        self._open = (kind, index)
        return closing + start

    def _close_open(self) -> bytes:
        if self._open is None:
            return b""
        index = self._open[1]
        self._open = None
        return _frame("content_block_stop", {"index": index})

    @staticmethod
    def _delta(index: int, delta: dict[str, Any]) -> bytes:
        return _frame("content_block_delta", {"index": index, "delta": delta})

    def _end_thinking(self, reasoning: ReasoningDone) -> bytes:
        signature = reasoning_signature(reasoning)
        if self._is_open("thinking"):
            index = self._index()
            self._open = None
            sign = self._delta(index, {"type": "signature_delta", "signature": signature}) if signature else b""
            return sign + _frame("content_block_stop", {"index": index})
        block = thinking_block(reasoning, self._context.thinking_text)  # nothing was streamed for it
        if block is None:
            return b""
        index, start = self._start({"type": "thinking", "thinking": "", "signature": ""})
        out = [self._close_open(), start]
        if block["thinking"]:
            out.append(self._delta(index, {"type": "thinking_delta", "thinking": block["thinking"]}))
        if signature:
            out.append(self._delta(index, {"type": "signature_delta", "signature": signature}))
        out.append(_frame("content_block_stop", {"index": index}))
        return b"".join(out)

    def _start_tool(self, call_id: str, name: str) -> bytes:
        if call_id in self._tools:
            return b""
        closing = self._close_open()
        index, start = self._start({"type": "tool_use", "id": call_id, "name": name, "input": {}})
        self._tools[call_id] = index
        self._open_tools.add(index)
        if name in EMPTY_STRING_OPTIONALS:
            self._held.add(call_id)
        return closing + start

    def _end_tool(self, call: ToolCallDone) -> bytes:
        out = [self._start_tool(call.call_id, call.name)]
        index = self._tools[call.call_id]
        if index not in self._open_tools:
            return b""
        if call.call_id in self._held:
            arguments = orjson.dumps(tool_input(call)).decode()
        else:
            arguments = "" if call.had_deltas else call.arguments
        if arguments:
            out.append(self._delta(index, {"type": "input_json_delta", "partial_json": arguments}))
        self._open_tools.discard(index)
        out.append(_frame("content_block_stop", {"index": index}))
        return b"".join(out)

    def on_finished(self, delta: Finished) -> bytes:
        self._done = True
        out = [self._close_open()]
        out += [_frame("content_block_stop", {"index": index}) for index in sorted(self._open_tools)]
        self._open_tools.clear()
        message = {"stop_reason": stop_reason(delta, bool(self._tools)), "stop_sequence": None}
        out.append(_frame("message_delta", {"delta": message, "usage": usage_payload(delta.usage)}))
        out.append(_frame("message_stop", {}))
        return b"".join(out)


# --- count_tokens -------------------------------------------------------------------------------

IMAGE_TOKENS = 1600  # what Anthropic bills a full-size image; base64 payloads are never counted as text
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_SKIPPED_KEYS = frozenset({"cache_control", "signature"})


def count_tokens(request: ClientRequest, catalog: ModelCatalog, cfg: Config) -> Reply:
    """``POST /v1/messages/count_tokens``: a local estimate, no upstream call and no account needed.
    No tokenizer can be downloaded offline, so: ceil(non-CJK chars / 4) + 1 per CJK character for
    text, a little structure per message, tool and object key, and a flat ``IMAGE_TOKENS`` per
    image or binary document (base64 data is never counted as text)."""
    body = expect_object(request.json())
    _model_name(body)
    _message_list(body)
    total = _estimate(body.get("model"))
    if body.get("system") is not None:
        total += _estimate(body["system"]) + 4
    total += sum(4 + _estimate(m.get("role")) + _estimate(m.get("content")) for m in body["messages"])
    total += sum(16 + _estimate(tool) for tool in _tool_list(body.get("tools")))
    total += _estimate(body.get("tool_choice")) + _estimate(body.get("thinking")) + 3
    return json_reply(200, {"input_tokens": max(1, total)})


def _estimate(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        text = value.strip()
        cjk = len(_CJK.findall(text))
        return math.ceil((len(text) - cjk) / 4) + cjk
    if isinstance(value, bool | int | float):
        return _estimate(str(value))
    if isinstance(value, list):
        return sum(_estimate(v) for v in value) + len(value)
    if isinstance(value, dict):
        source = value.get("source")
        if isinstance(source, dict) and source.get("type") in ("base64", "url", "file"):
            return IMAGE_TOKENS
        if value.get("type") == "redacted_thinking":
            return 0
        return 2 + sum(_estimate(k) + _estimate(v) for k, v in value.items() if k not in _SKIPPED_KEYS)
    return 0


# --- errors -------------------------------------------------------------------------------------

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_payload(error: Failure) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) in Anthropic's envelope. No usable account and an overloaded backend are
    529 ``overloaded_error``, which Claude Code retries with backoff."""
    status = http_status(error)
    if status == 503:
        status = 529
    kind = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    message = error.message if isinstance(error, ClientError) else str(error)
    return status, {"type": "error", "error": {"type": kind, "message": message}}


def render_error(error: Failure) -> Reply:
    status, payload = error_payload(error)
    return json_reply(status, payload, retry_headers(error))
