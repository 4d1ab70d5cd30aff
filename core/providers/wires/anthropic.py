"""The Anthropic Messages wire: ``POST {base}/v1/messages`` with ``stream: true``, answered with
Anthropic's event sequence (``message_start``, content blocks, ``message_delta``, ``message_stop``).

Thinking round-trips: a thinking block's signature becomes the reasoning item's
``encrypted_content`` (``ant1.<signature>``; redacted thinking ``antr1.<data>``), and a reasoning
item sealed so is sent back as the block it was. Reasoning sealed by anyone else is left out.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.sse import SSEParser
from core.protocols.items import parse_arguments
from core.providers.events import ResponsesEmitter, TokenUsage
from core.providers.wires import CallSpec, WireRequest, echo_of, forced_tool, function_tools
from core.providers.wires.conversation import Message, Part, append_merged, instructions_of, read_conversation
from core.turn.model import UpstreamEvent

VERSION = "2023-06-01"
THINKING_SEAL = "ant1."
REDACTED_SEAL = "antr1."
_INCOMPLETE = {"max_tokens": "max_output_tokens", "refusal": "content_filter", "model_context_window_exceeded": "max_output_tokens"}
_ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
                 "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
                 "timeout_error": 504, "overloaded_error": 503}  # fmt: skip


def _blocks(parts: list[Part]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if part.kind == "text":
            if part.text:
                blocks.append({"type": "text", "text": part.text})
            continue
        inline = part.inline
        if part.kind == "image":
            source = ({"type": "base64", "media_type": inline[0], "data": inline[1]} if inline
                      else {"type": "url", "url": part.url})  # fmt: skip
            blocks.append({"type": "image", "source": source})
        elif inline is not None and inline[0] == "application/pdf":
            blocks.append({"type": "document", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}})
    return blocks


def _assistant(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for thought in message.thoughts:
        sealed = thought.sealed or ""
        if sealed.startswith(THINKING_SEAL):
            blocks.append({"type": "thinking", "thinking": thought.text, "signature": sealed[len(THINKING_SEAL):]})
        elif sealed.startswith(REDACTED_SEAL):
            blocks.append({"type": "redacted_thinking", "data": sealed[len(REDACTED_SEAL):]})
    blocks += _blocks(message.parts)
    for call in message.calls:
        blocks.append({"type": "tool_use", "id": call.call_id, "name": call.name, "input": parse_arguments(call.arguments) or {}})
    return blocks


def conversation(spec: CallSpec) -> tuple[str, list[dict[str, Any]]]:
    """(system text, messages): system messages join the system text; consecutive messages of a
    role merge (tool results first in their user message, as the API requires)."""
    system = [instructions_of(spec.body)]
    messages: list[dict[str, Any]] = []
    for message in read_conversation(spec.body):
        if message.role == "system":
            system.append(message.text)
            continue
        if message.role == "tool":
            role, content = "user", [_result(r.call_id, r.text, r.parts) for r in message.results]
        elif message.role == "assistant":
            role, content = "assistant", _assistant(message)
        else:
            role, content = "user", _blocks(message.parts)
        append_merged(messages, role, "content", content)
    return "\n\n".join(s for s in system if s), messages


def _result(call_id: str, text: str, parts: list[Part]) -> dict[str, Any]:
    images = _blocks(parts)
    content: str | list[dict[str, Any]] = ([{"type": "text", "text": text}] if text else []) + images if images else text
    return {"type": "tool_result", "tool_use_id": call_id, "content": content}


def build_request(spec: CallSpec) -> WireRequest:
    system, messages = conversation(spec)
    max_tokens = spec.sampling("max_output_tokens") or spec.default_max_tokens
    body: dict[str, Any] = {"model": spec.model, "max_tokens": max_tokens, "messages": messages, "stream": True}
    if system:
        body["system"] = system
    tools = function_tools(spec.body)
    if tools:
        body["tools"] = [{"name": n, "description": d, "input_schema": p} if d else {"name": n, "input_schema": p} for n, d, p in tools]
        mode, name = forced_tool(spec.body)
        choice: dict[str, Any] = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"},
                                  "function": {"type": "tool", "name": name}}[mode]  # fmt: skip
        if spec.body.get("parallel_tool_calls") is False and mode != "none":
            choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = choice
    budget = spec.thinking_budget
    if budget is not None and budget >= max_tokens:
        budget = max_tokens - 1024 if max_tokens > 2048 else None
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    else:  # sampling settings are refused while thinking
        for name, key in (("temperature", "temperature"), ("top_p", "top_p")):
            if (value := spec.sampling(name)) is not None:
                body[key] = value
    if stop := spec.sampling("stop"):
        body["stop_sequences"] = stop
    headers = spec.headers({"x-api-key": spec.key, "anthropic-version": VERSION})
    return WireRequest(spec.url("/v1/messages"), headers, orjson.dumps(body))


class StreamParser:
    def __init__(self, spec: CallSpec) -> None:
        self._emitter = ResponsesEmitter(spec.model, echo_of(spec), spec.custom_tools)
        self._sse = SSEParser()
        self._usage = TokenUsage()
        self._stop: str | None = None
        self._tools: set[int] = set()

    def feed(self, chunk: bytes) -> list[UpstreamEvent]:
        return [e for frame in self._sse.feed(chunk) for e in self._frame(frame.event, frame.data)]

    def close(self) -> list[UpstreamEvent]:
        return [e for frame in self._sse.close() for e in self._frame(frame.event, frame.data)]

    def _frame(self, name: str, raw: bytes) -> list[UpstreamEvent]:
        data, failed = self._emitter.decode(raw)
        if not isinstance(data, dict):
            return failed
        kind = name or data.get("type")
        handler = _HANDLERS.get(kind or "")
        return handler(self, data) if handler else []

    def _message_start(self, data: dict[str, Any]) -> list[UpstreamEvent]:
        message = data.get("message") or {}
        self._count(message.get("usage"))
        return self._emitter.start(message.get("id"))

    def _block_start(self, data: dict[str, Any]) -> list[UpstreamEvent]:
        block, index = data.get("content_block") or {}, int(data.get("index") or 0)
        kind = block.get("type")
        if kind == "text":
            return self._emitter.text(block.get("text") or "")
        if kind == "thinking":
            return self._emitter.reasoning(block.get("thinking") or "")
        if kind == "redacted_thinking":
            return self._emitter.reasoning_signature(REDACTED_SEAL + str(block.get("data") or ""))
        if kind == "tool_use":
            self._tools.add(index)
            out = self._emitter.call_start(str(index), str(block.get("id") or ""), str(block.get("name") or ""))
            if block.get("input"):  # a whole input up front (servers that do not stream it)
                out += self._emitter.call_args(str(index), orjson.dumps(block["input"]).decode())
            return out
        return []

    def _block_delta(self, data: dict[str, Any]) -> list[UpstreamEvent]:
        delta, index = data.get("delta") or {}, int(data.get("index") or 0)
        kind = delta.get("type")
        if kind == "text_delta":
            return self._emitter.text(delta.get("text") or "")
        if kind == "thinking_delta":
            return self._emitter.reasoning(delta.get("thinking") or "")
        if kind == "signature_delta":
            return self._emitter.reasoning_signature(THINKING_SEAL + str(delta.get("signature") or ""))
        if kind == "input_json_delta":
            return self._emitter.call_args(str(index), delta.get("partial_json") or "")
        return []

    def _block_stop(self, data: dict[str, Any]) -> list[UpstreamEvent]:
        index = int(data.get("index") or 0)
        if index in self._tools:
            self._tools.discard(index)
            return self._emitter.call_end(str(index))
        return []

    def _message_delta(self, data: dict[str, Any]) -> list[UpstreamEvent]:
        self._stop = (data.get("delta") or {}).get("stop_reason") or self._stop
        self._count(data.get("usage"))
        return []

    def _message_stop(self, data: dict[str, Any]) -> list[UpstreamEvent]:
        return self._emitter.finish(self._usage, _INCOMPLETE.get(self._stop or ""))

    def _error(self, data: dict[str, Any]) -> list[UpstreamEvent]:
        error = data.get("error") or {}
        kind = str(error.get("type") or "api_error")
        return self._emitter.fail(_ERROR_STATUS.get(kind, 502), kind, str(error.get("message") or kind))

    def _count(self, usage: Any) -> None:
        """Anthropic's usage: input excludes the cache reads and writes; output counts are cumulative."""
        if not isinstance(usage, dict):
            return
        if "input_tokens" in usage or "cache_read_input_tokens" in usage:
            read = int(usage.get("cache_read_input_tokens") or 0)
            written = int(usage.get("cache_creation_input_tokens") or 0)
            fresh = int(usage.get("input_tokens") or 0)
            if fresh or read or written:
                self._usage.input_tokens = fresh + read + written
                self._usage.cached_tokens = read
                self._usage.cache_write_tokens = written
        if isinstance(usage.get("output_tokens"), int):
            self._usage.output_tokens = usage["output_tokens"]


_HANDLERS = {
    "message_start": StreamParser._message_start,
    "content_block_start": StreamParser._block_start,
    "content_block_delta": StreamParser._block_delta,
    "content_block_stop": StreamParser._block_stop,
    "message_delta": StreamParser._message_delta,
    "message_stop": StreamParser._message_stop,
    "error": StreamParser._error,
}
