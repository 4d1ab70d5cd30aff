"""A faithful fake of Anthropic's API: ``POST /v1/messages`` (whole, or streamed with Anthropic's event
sequence: ``message_start``, ``ping``, content blocks with their deltas, ``message_delta``,
``message_stop``), ``GET /v1/models`` (paged), the ``x-api-key`` and ``anthropic-version`` headers,
the request checks and their ``{"type": "error", "error": {"type", "message"}}`` bodies."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
from aiohttp import web

from provider_fakes.base import Answer, FakeProvider, Refusal, arguments_text, json_response, split_words, tokens

MODELS: dict[str, dict[str, Any]] = {
    "claude-sonnet-4-5-20250929": {"name": "Claude Sonnet 4.5", "thinking": True, "created": "2025-09-29T00:00:00Z"},
    "claude-opus-4-1-20250805": {"name": "Claude Opus 4.1", "thinking": True, "created": "2025-08-05T00:00:00Z"},
    "claude-3-5-haiku-20241022": {"name": "Claude Haiku 3.5", "thinking": False, "created": "2024-10-22T00:00:00Z"},
}
FIELDS = frozenset({"model", "messages", "max_tokens", "system", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata",
                    "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers", "context_management"})  # fmt: skip
SIGNATURE = "fake-anthropic-sig:"


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Refusal:
    return Refusal(status, {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_" + secrets.token_hex(12)}, headers)


def invalid(message: str) -> Refusal:
    return _error(400, "invalid_request_error", message)


def check_messages(messages: Any, thinking: bool) -> str:
    """Anthropic's rules on the conversation; returns the last user text."""
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: at least one message is required")
    last_user, pending = "", []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise invalid(f"messages.{index}.content: Input should be a valid list")
        results = [b.get("tool_use_id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        if pending and sorted(results) != sorted(pending):
            raise invalid(f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: {', '.join(pending)}. "
                          "Each `tool_use` block must have a corresponding `tool_result` block in the next message.")  # fmt: skip
        unexpected = [r for r in results if r not in pending]
        if unexpected:
            raise invalid(f"messages.{index}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: {', '.join(unexpected)}. "
                          "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")  # fmt: skip
        pending = []
        for position, block in enumerate(blocks):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text" and not block.get("text"):
                raise invalid("messages: text content blocks must be non-empty")
            if kind == "thinking" and not str(block.get("signature") or "").startswith(SIGNATURE):
                raise invalid(f"messages.{index}.content.{position}: Invalid `signature` in `thinking` block")
            if kind == "tool_use":
                pending.append(block.get("id"))
        if message["role"] == "assistant" and thinking and pending and index == len(messages) - 2:
            first = blocks[0].get("type") if blocks and isinstance(blocks[0], dict) else None
            if first not in ("thinking", "redacted_thinking"):
                raise invalid(f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` "
                              "is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of "
                              "`tool_use` and `tool_result` blocks).")  # fmt: skip
        if message["role"] == "user":
            last_user = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text") or last_user
    return last_user


class FakeAnthropic(FakeProvider):
    name = "anthropic"

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/messages", self._messages)
        router.add_get("/v1/models", self._models)

    def key_of(self, request: web.Request) -> str | None:
        """``x-api-key``, or a Bearer token (what the SDK sends with API version 2026-10-21)."""
        auth = request.headers.get("Authorization", "")
        return request.headers.get("x-api-key") or (auth[7:].strip() if auth.startswith("Bearer ") else None) or None

    def refusal(self, status: int, message: str, kind: str) -> Refusal:
        if status == 401:
            return _error(401, "authentication_error", "x-api-key header is required" if "Missing" in message else "invalid x-api-key")
        if status == 429:
            return _error(429, "rate_limit_error", "This request would exceed the rate limit for your organization.", {"retry-after": "4"})
        if status == 529:
            return _error(529, "overloaded_error", "Overloaded")
        return _error(status, "api_error" if status >= 500 else "invalid_request_error", message)

    async def _models(self, request: web.Request) -> web.Response:
        await self.receive(request)
        ids = list(MODELS)
        limit = int(request.query.get("limit", 20))
        after = request.query.get("after_id")
        start = ids.index(after) + 1 if after in ids else 0
        page = ids[start:start + limit]
        data = [{"type": "model", "id": m, "display_name": MODELS[m]["name"], "created_at": MODELS[m]["created"]} for m in page]
        return json_response(200, {"data": data, "has_more": start + limit < len(ids), "first_id": page[0] if page else None,
                                   "last_id": page[-1] if page else None})  # fmt: skip

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.receive(request)
        if not request.headers.get("anthropic-version"):
            raise invalid("anthropic-version: header is required")
        if not isinstance(body, dict):
            raise invalid("messages: Field required")
        for name in body:
            if name not in FIELDS:
                raise invalid(f"{name}: Extra inputs are not permitted")
        model = body.get("model")
        if model not in MODELS:
            raise _error(404, "not_found_error", f"model: {model}")
        if not isinstance(body.get("max_tokens"), int):
            raise invalid("max_tokens: Field required")
        thinking = body.get("thinking") if isinstance(body.get("thinking"), dict) and body["thinking"].get("type") == "enabled" else None
        if thinking is not None:
            if not MODELS[model]["thinking"]:
                raise invalid(f"'{model}' does not support thinking.")
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if body["max_tokens"] <= budget:
                raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
                              "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")  # fmt: skip
            if body.get("temperature") not in (None, 1):
                raise invalid("`temperature` may only be set to 1 when thinking is enabled or in extended thinking mode. Please consult our "
                              "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#important-considerations-when-using-extended-thinking")  # fmt: skip
        user = check_messages(body.get("messages"), thinking is not None)
        return await self._respond(request, body, self.answer(user), thinking is not None)

    async def _respond(self, request: web.Request, body: dict[str, Any], answer: Answer, think: bool) -> web.StreamResponse:
        blocks: list[dict[str, Any]] = []
        if think:
            blocks.append({"type": "thinking", "thinking": answer.reasoning or "Let me think about that.", "signature": SIGNATURE + secrets.token_hex(24)})
        text = answer.text if answer.text is not None else ("" if answer.tool_calls else "Hello.")
        if text:
            blocks.append({"type": "text", "text": text})
        for call in answer.tool_calls:
            blocks.append({"type": "tool_use", "id": call.get("id") or "toolu_" + secrets.token_hex(12), "name": call["name"],
                           "input": orjson.loads(arguments_text(call))})  # fmt: skip
        stop = "max_tokens" if answer.finish == "length" else "tool_use" if answer.tool_calls else "end_turn"
        prompt = tokens(orjson.dumps(body.get("messages")).decode() + orjson.dumps(body.get("system")).decode())
        written = sum(tokens(b.get("text") or b.get("thinking") or orjson.dumps(b.get("input")).decode()) for b in blocks)
        usage = {"input_tokens": prompt, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": written,
                 "service_tier": "standard"}  # fmt: skip
        message = {"id": "msg_" + secrets.token_hex(12), "type": "message", "role": "assistant", "model": body["model"], "content": blocks,
                   "stop_reason": stop, "stop_sequence": None, "usage": usage}  # fmt: skip
        if body.get("stream") is not True:
            return json_response(200, message)
        response = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
        await response.prepare(request)
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": {**message, "content": [], "stop_reason": None,
                                                                                  "usage": {**usage, "output_tokens": 1}}}), ("ping", {})]  # fmt: skip
        for index, block in enumerate(blocks):
            kind = block["type"]
            start = {"thinking": {"type": "thinking", "thinking": "", "signature": ""}, "text": {"type": "text", "text": ""},
                     "tool_use": {**block, "input": {}}}[kind]  # fmt: skip
            events.append(("content_block_start", {"index": index, "content_block": start}))
            if kind == "thinking":
                events += [("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": w}}) for w in split_words(block["thinking"])]
                events.append(("content_block_delta", {"index": index, "delta": {"type": "signature_delta", "signature": block["signature"]}}))
            elif kind == "text":
                events += [("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": w}}) for w in split_words(block["text"])]
            else:
                raw = orjson.dumps(block["input"]).decode()
                events += [("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": raw[i:i + 10]}})
                           for i in range(0, len(raw), 10)]  # fmt: skip
            events.append(("content_block_stop", {"index": index}))
        events.append(("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": written}}))
        events.append(("message_stop", {}))
        for count, (name, data) in enumerate(events):
            if answer.stream_error is not None and count >= int(answer.stream_error.get("after", 0)):
                error = answer.stream_error.get("error") or {"type": "overloaded_error", "message": "Overloaded"}
                await response.write(b"event: error\ndata: " + orjson.dumps({"type": "error", "error": error}) + b"\n\n")
                break
            await response.write(f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n")
            if answer.delay_ms:
                await asyncio.sleep(answer.delay_ms / 1000)
        await response.write_eof()
        return response
