"""The Gemini wire: ``POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`` with the key
in ``x-goog-api-key``, answered as SSE frames of ``GenerateContentResponse``.

Gemini sends each function call whole, with an optional ``thoughtSignature`` that must come back
with the call next turn (Gemini 3); the signatures wait in a ``SignatureMemo`` keyed by call id.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from core.codex.sse import SSEParser
from core.protocols.base import random_id
from core.protocols.items import parse_arguments
from core.providers.events import ResponsesEmitter, TokenUsage
from core.providers.wires import CallSpec, WireRequest, echo_of, forced_tool, function_tools
from core.providers.wires.conversation import Message, Part, append_merged, instructions_of, read_conversation
from core.turn.model import UpstreamEvent

_CONTENT_FILTER = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})
_STATUS_CODES = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
                 "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429, "INTERNAL": 500, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}  # fmt: skip


def _parts(parts: list[Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if part.kind == "text":
            if part.text:
                out.append({"text": part.text})
        elif (inline := part.inline) is not None:
            out.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
        elif part.url.startswith(("http://", "https://")):
            mime = "application/pdf" if part.kind == "file" else "image/jpeg"
            out.append({"fileData": {"mimeType": mime, "fileUri": part.url}})
    return out


def _model_parts(message: Message, spec: CallSpec) -> list[dict[str, Any]]:
    parts = _parts(message.parts)
    for call in message.calls:
        part: dict[str, Any] = {"functionCall": {"id": call.call_id, "name": call.name, "args": parse_arguments(call.arguments) or {}}}
        if (signature := spec.signatures.get(call.call_id)) is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _response(text: str) -> dict[str, Any]:
    value = parse_arguments(text) if text.lstrip().startswith("{") else None
    return value if value is not None else {"output": text}


def contents_of(spec: CallSpec) -> tuple[str, list[dict[str, Any]]]:
    system = [instructions_of(spec.body)]
    contents: list[dict[str, Any]] = []
    for message in read_conversation(spec.body):
        if message.role == "system":
            system.append(message.text)
            continue
        if message.role == "tool":
            role = "user"
            parts = [{"functionResponse": {"id": r.call_id, "name": r.name, "response": _response(r.text)}} for r in message.results]
            parts += [p for r in message.results for p in _parts(r.parts)]
        elif message.role == "assistant":
            role, parts = "model", _model_parts(message, spec)
        else:
            role, parts = "user", _parts(message.parts)
        append_merged(contents, role, "parts", parts)
    return "\n\n".join(s for s in system if s), contents


def build_request(spec: CallSpec) -> WireRequest:
    system, contents = contents_of(spec)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    tools = function_tools(spec.body)
    if tools:
        body["tools"] = [{"functionDeclarations": [{"name": n, "description": d, "parametersJsonSchema": p} for n, d, p in tools]}]
        mode, name = forced_tool(spec.body)
        config: dict[str, Any] = {"mode": {"auto": "AUTO", "none": "NONE"}.get(mode, "ANY")}
        if name:
            config["allowedFunctionNames"] = [name]
        body["toolConfig"] = {"functionCallingConfig": config}
    generation: dict[str, Any] = {}
    for name, key in (("max_output_tokens", "maxOutputTokens"), ("temperature", "temperature"), ("top_p", "topP"),
                      ("stop", "stopSequences")):  # fmt: skip
        if (value := spec.sampling(name)) is not None:
            generation[key] = value
    fmt = (spec.body.get("text") or {}).get("format") if isinstance(spec.body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        generation["responseMimeType"] = "application/json"
        if isinstance(fmt.get("schema"), dict):
            generation["responseJsonSchema"] = fmt["schema"]
    if (budget := spec.thinking_budget) is not None:
        generation["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}
    if generation:
        body["generationConfig"] = generation
    headers = spec.headers({"x-goog-api-key": spec.key})
    url = spec.url(f"/v1beta/models/{quote(spec.model, safe='')}:streamGenerateContent?alt=sse")
    return WireRequest(url, headers, orjson.dumps(body))


class StreamParser:
    def __init__(self, spec: CallSpec) -> None:
        self._emitter = ResponsesEmitter(spec.model, echo_of(spec), spec.custom_tools)
        self._signatures = spec.signatures
        self._sse = SSEParser()
        self._usage: TokenUsage | None = None
        self._finish: str | None = None

    def feed(self, chunk: bytes) -> list[UpstreamEvent]:
        return [e for frame in self._sse.feed(chunk) for e in self._frame(frame.data)]

    def close(self) -> list[UpstreamEvent]:
        out = [e for frame in self._sse.close() for e in self._frame(frame.data)]
        if self._finish is not None:
            out += self._end()
        return out

    def _end(self) -> list[UpstreamEvent]:
        finish = self._finish or "STOP"
        reason = "max_output_tokens" if finish == "MAX_TOKENS" else "content_filter" if finish in _CONTENT_FILTER else None
        return self._emitter.finish(self._usage, reason)

    def _frame(self, raw: bytes) -> list[UpstreamEvent]:
        data, failed = self._emitter.decode(raw)
        if isinstance(data, list):  # a JSON-array stream's element
            return [e for item in data for e in self._chunk(item)]
        return failed or self._chunk(data)

    def _chunk(self, data: Any) -> list[UpstreamEvent]:
        if not isinstance(data, dict):
            return []
        if isinstance(data.get("error"), dict):
            error = data["error"]
            status = error.get("code") if isinstance(error.get("code"), int) else _STATUS_CODES.get(str(error.get("status")), 502)
            return self._emitter.fail(status, str(error.get("status") or "provider_error"), str(error.get("message") or error))
        out = self._emitter.start(data.get("responseId") if isinstance(data.get("responseId"), str) else None)
        if isinstance(data.get("usageMetadata"), dict):
            meta = data["usageMetadata"]
            thoughts = int(meta.get("thoughtsTokenCount") or 0)
            self._usage = TokenUsage(int(meta.get("promptTokenCount") or 0), int(meta.get("candidatesTokenCount") or 0) + thoughts,
                                     int(meta.get("cachedContentTokenCount") or 0), thoughts)  # fmt: skip
        candidates = data.get("candidates") or []
        candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
        for part in (candidate.get("content") or {}).get("parts") or []:
            out += self._part(part)
        if (data.get("promptFeedback") or {}).get("blockReason"):
            self._finish = "SAFETY"
        if candidate.get("finishReason"):
            self._finish = candidate["finishReason"]
        if self._finish is not None:
            out += self._end()
        return out

    def _part(self, part: Any) -> list[UpstreamEvent]:
        if not isinstance(part, dict):
            return []
        if isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            call_id = call.get("id") or random_id("call_")
            if isinstance(part.get("thoughtSignature"), str):
                self._signatures.put(call_id, part["thoughtSignature"])
            return self._emitter.call(call_id, str(call.get("name") or ""), orjson.dumps(call.get("args") or {}).decode())
        if isinstance(part.get("text"), str):
            return self._emitter.reasoning(part["text"]) if part.get("thought") else self._emitter.text(part["text"])
        return []
