"""The Chat Completions wire (OpenAI, OpenRouter and any OpenAI-compatible server):
``POST {base}/chat/completions`` with ``stream: true``, answered as ``chat.completion.chunk`` SSE."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.sse import SSEParser
from core.protocols.base import random_id
from core.providers.events import ResponsesEmitter, TokenUsage
from core.providers.wires import CallSpec, WireRequest, echo_of, forced_tool, function_tools
from core.providers.wires.conversation import Message, Part, instructions_of, read_conversation
from core.turn.model import UpstreamEvent

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _content(parts: list[Part]) -> str | list[dict[str, Any]]:
    if all(p.kind == "text" for p in parts):
        return "".join(p.text for p in parts)
    out: list[dict[str, Any]] = []
    for part in parts:
        if part.kind == "text":
            out.append({"type": "text", "text": part.text})
        elif part.kind == "image":
            image: dict[str, Any] = {"url": part.url}
            if part.detail in ("low", "high", "auto"):
                image["detail"] = part.detail
            out.append({"type": "image_url", "image_url": image})
        elif part.inline is not None:
            out.append({"type": "file", "file": {"filename": part.filename or "file", "file_data": part.url}})
    return out


def messages_of(spec: CallSpec) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if system := instructions_of(spec.body):
        messages.append({"role": "system", "content": system})
    for message in read_conversation(spec.body):
        messages.extend(_render(message))
    return messages


def _render(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"role": "tool", "tool_call_id": r.call_id, "content": r.text} for r in message.results]
    if message.role != "assistant":
        return [{"role": message.role, "content": _content(message.parts)}]
    rendered: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if message.calls:
        rendered["tool_calls"] = [{"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                  for c in message.calls]  # fmt: skip
    elif rendered["content"] is None:
        rendered["content"] = ""
    return [rendered]


def build_request(spec: CallSpec) -> WireRequest:
    body: dict[str, Any] = {"model": spec.model, "messages": messages_of(spec), "stream": True,
                            "stream_options": {"include_usage": True}}  # fmt: skip
    tools = function_tools(spec.body)
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": n, "description": d, "parameters": p}} for n, d, p in tools]
        mode, name = forced_tool(spec.body)
        body["tool_choice"] = {"type": "function", "function": {"name": name}} if mode == "function" else mode
        if isinstance(spec.body.get("parallel_tool_calls"), bool):
            body["parallel_tool_calls"] = spec.body["parallel_tool_calls"]
    if (effort := spec.effort) is not None:
        if spec.provider.kind == "openrouter":
            body["reasoning"] = {"effort": effort}
        else:
            body["reasoning_effort"] = effort
    fmt = (spec.body.get("text") or {}).get("format") if isinstance(spec.body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict") if k in fmt}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        body["response_format"] = {"type": "json_object"}
    if (limit := spec.sampling("max_output_tokens")) is not None:
        body["max_completion_tokens" if spec.provider.kind == "openai" else "max_tokens"] = limit
    for name in ("temperature", "top_p"):
        if (value := spec.sampling(name)) is not None:
            body[name] = value
    if stop := spec.sampling("stop"):
        body["stop"] = stop
    headers = spec.headers({"Authorization": f"Bearer {spec.key}"})
    return WireRequest(spec.url("/chat/completions"), headers, orjson.dumps(body))


def usage_of(raw: Any) -> TokenUsage | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return TokenUsage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0),
                      int(prompt.get("cached_tokens") or 0), int(completion.get("reasoning_tokens") or 0))  # fmt: skip


class StreamParser:
    """``chat.completion.chunk`` frames → Responses events. Tool calls arrive as pieces keyed by
    their ``index``; reasoning as ``reasoning_content`` (or OpenRouter's ``reasoning``); usage in
    the last chunk (``stream_options.include_usage``), after the one with ``finish_reason``."""

    def __init__(self, spec: CallSpec) -> None:
        self._emitter = ResponsesEmitter(spec.model, echo_of(spec), spec.custom_tools)
        self._sse = SSEParser()
        self._finish: str | None = None
        self._usage: TokenUsage | None = None
        self._calls: dict[int, str] = {}  # tool call index → its call id

    def feed(self, chunk: bytes) -> list[UpstreamEvent]:
        out: list[UpstreamEvent] = []
        for frame in self._sse.feed(chunk):
            out += self._frame(frame.data)
        return out

    def close(self) -> list[UpstreamEvent]:
        out: list[UpstreamEvent] = []
        for frame in self._sse.close():
            out += self._frame(frame.data)
        if self._finish is not None and not self._emitter.finished:
            out += self._emitter.finish(self._usage, _INCOMPLETE.get(self._finish))
        return out  # no finish_reason at all: the stream broke (the pipeline reports it)

    def _frame(self, raw: bytes) -> list[UpstreamEvent]:
        data, failed = self._emitter.decode(raw)
        if not isinstance(data, dict):
            return failed
        if isinstance(data.get("error"), dict):  # an error in the stream (OpenRouter sends them so)
            error = data["error"]
            status = error.get("code") if isinstance(error.get("code"), int) else 502
            return self._emitter.fail(status, str(error.get("type") or error.get("code") or "provider_error"), str(error.get("message") or error))
        out = self._emitter.start(data.get("id") if isinstance(data.get("id"), str) else None)
        if (usage := usage_of(data.get("usage"))) is not None:
            self._usage = usage
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str):
                out += self._emitter.reasoning(reasoning)
            if isinstance(delta.get("content"), str):
                out += self._emitter.text(delta["content"])
            for call in delta.get("tool_calls") or []:
                out += self._call(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        if self._finish is not None and self._usage is not None and not self._emitter.finished:
            out += self._emitter.finish(self._usage, _INCOMPLETE.get(self._finish))
        return out

    def _call(self, call: Any) -> list[UpstreamEvent]:
        if not isinstance(call, dict):
            return []
        index = call.get("index", 0)
        function = call.get("function") or {}
        out: list[UpstreamEvent] = []
        if index not in self._calls:
            call_id = call.get("id") or random_id("call_")
            self._calls[index] = call_id
            out += self._emitter.call_start(str(index), call_id, str(function.get("name") or ""))
        if isinstance(function.get("arguments"), str):
            out += self._emitter.call_args(str(index), function["arguments"])
        return out
