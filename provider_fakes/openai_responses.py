"""``POST /v1/responses`` as OpenAI answers it: the request checks (unknown parameters, tool
outputs without their call, reasoning sealed elsewhere), the ``Response`` object, or its event
stream (``response.created`` … ``response.completed``, items opened and closed in order)."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from provider_fakes.base import Answer, arguments_text, call_id, json_response, split_words, tokens

FIELDS = frozenset({
    "model", "input", "instructions", "stream", "store", "tools", "tool_choice", "parallel_tool_calls", "reasoning", "include",
    "text", "service_tier", "prompt_cache_key", "max_output_tokens", "temperature", "top_p", "metadata", "previous_response_id",
    "truncation", "user", "background", "safety_identifier", "prompt", "top_logprobs", "max_tool_calls", "stream_options",
})  # fmt: skip
SEAL = "fake-openai-sealed:"  # this fake's encrypted reasoning; anything else "could not be verified"


def last_user_text(items: list[Any]) -> str:
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "input_text")
    return ""


def check(body: Any, models: dict[str, dict[str, Any]], invalid: Any, missing: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise invalid("We could not parse the JSON body of your request.", None, None)
    for name in body:
        if name not in FIELDS:
            raise invalid(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
    model = body.get("model")
    traits = models.get(model) if isinstance(model, str) else None
    if traits is None or traits.get("embeddings") or traits.get("images"):
        raise missing(str(model))
    items = body.get("input")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items
    if not isinstance(items, list):
        raise invalid("Invalid type for 'input': expected one of a string or array of input items.", "input", "invalid_type")
    calls: set[str] = set()
    for item in items:
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind in ("function_call", "custom_tool_call"):
            calls.add(item.get("call_id"))
        elif kind in ("function_call_output", "custom_tool_call_output") and item.get("call_id") not in calls:
            raise invalid(f"No tool call found for function call output with call_id {item.get('call_id')}.", "input", None)
        elif kind == "reasoning" and item.get("encrypted_content") and not str(item["encrypted_content"]).startswith(SEAL):
            raise invalid(f"The encrypted content for item {item.get('id')} could not be verified.", None, "invalid_encrypted_content")
    if body.get("reasoning") and not traits.get("reasoning"):
        raise invalid("Unsupported parameter: 'reasoning.effort' is not supported with this model.", "reasoning.effort", "unsupported_parameter")
    if traits.get("reasoning") and body.get("temperature") not in (None, 1):
        raise invalid("Unsupported parameter: 'temperature' is not supported with this model.", "temperature", "unsupported_parameter")
    return last_user_text(items), traits


class _Turn:
    """One answer as Responses items and events."""

    def __init__(self, body: dict[str, Any], answer: Answer, think: bool) -> None:
        self.body, self.answer = body, answer
        self.id = "resp_" + secrets.token_hex(16)
        self.created = int(time.time())
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.think = think
        self.prompt = tokens(orjson.dumps(body.get("input")).decode() + str(body.get("instructions") or ""))

    def response(self, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.body
        return {"id": self.id, "object": "response", "created_at": self.created, "status": status, "background": False, "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
                "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"), "model": body["model"],
                "output": self.output if status != "in_progress" else [], "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "previous_response_id": None, "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
                "store": body.get("store", True), "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
                "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [], "top_p": body.get("top_p", 1.0),
                "truncation": "disabled", "usage": usage, "metadata": {}}  # fmt: skip

    def event(self, data: dict[str, Any]) -> dict[str, Any]:
        data["sequence_number"] = self.seq
        self.seq += 1
        return data

    def events(self) -> list[dict[str, Any]]:
        out = [self.event({"type": "response.created", "response": self.response("in_progress")}),
               self.event({"type": "response.in_progress", "response": self.response("in_progress")})]
        reasoning_tokens = 0
        if self.think:
            item: dict[str, Any] = {"id": "rs_" + secrets.token_hex(12), "type": "reasoning", "summary": []}
            index = len(self.output)
            out.append(self.event({"type": "response.output_item.added", "output_index": index, "item": dict(item)}))
            if "reasoning.encrypted_content" in (self.body.get("include") or []):
                item["encrypted_content"] = SEAL + secrets.token_hex(16)
            reasoning_tokens = 16
            self.output.append(item)
            out.append(self.event({"type": "response.output_item.done", "output_index": index, "item": item}))
        text = self.answer.text if self.answer.text is not None else ("" if self.answer.tool_calls else "Hello.")
        if text:
            index, item_id = len(self.output), "msg_" + secrets.token_hex(12)
            base = {"item_id": item_id, "output_index": index, "content_index": 0}
            out.append(self.event({"type": "response.output_item.added", "output_index": index,
                                   "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}))
            out.append(self.event({"type": "response.content_part.added", **base, "part": {"type": "output_text", "text": "", "annotations": []}}))
            for piece in split_words(text):
                out.append(self.event({"type": "response.output_text.delta", **base, "delta": piece, "logprobs": []}))
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            out.append(self.event({"type": "response.output_text.done", **base, "text": text, "logprobs": []}))
            out.append(self.event({"type": "response.content_part.done", **base, "part": part}))
            item = {"id": item_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
            self.output.append(item)
            out.append(self.event({"type": "response.output_item.done", "output_index": index, "item": item}))
        for call in self.answer.tool_calls:
            index, item_id, arguments = len(self.output), "fc_" + secrets.token_hex(12), arguments_text(call)
            item = {"id": item_id, "type": "function_call", "status": "in_progress", "arguments": "", "call_id": call.get("id") or call_id(),
                    "name": call["name"]}  # fmt: skip
            out.append(self.event({"type": "response.output_item.added", "output_index": index, "item": dict(item)}))
            for start in range(0, len(arguments), 12):
                out.append(self.event({"type": "response.function_call_arguments.delta", "item_id": item_id, "output_index": index,
                                       "delta": arguments[start:start + 12]}))  # fmt: skip
            out.append(self.event({"type": "response.function_call_arguments.done", "item_id": item_id, "output_index": index,
                                   "arguments": arguments}))  # fmt: skip
            item.update(status="completed", arguments=arguments)
            self.output.append(item)
            out.append(self.event({"type": "response.output_item.done", "output_index": index, "item": item}))
        written = tokens(text) + reasoning_tokens
        usage = {"input_tokens": self.prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": written,
                 "output_tokens_details": {"reasoning_tokens": reasoning_tokens}, "total_tokens": self.prompt + written}  # fmt: skip
        status = "incomplete" if self.answer.finish == "length" else "completed"
        out.append(self.event({"type": f"response.{status}", "response": self.response(status, usage)}))
        return out


async def respond(request: web.Request, body: dict[str, Any], answer: Answer, think: bool) -> web.StreamResponse:
    turn = _Turn(body, answer, think)
    events = turn.events()
    if body.get("stream") is not True:
        return json_response(200, events[-1]["response"])
    response = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
    await response.prepare(request)
    for count, event in enumerate(events):
        if answer.stream_error is not None and count >= int(answer.stream_error.get("after", 0)):
            error = answer.stream_error.get("error") or {"code": "server_error", "message": "The server had an error processing your request."}
            await response.write(b"event: error\ndata: " + orjson.dumps({"type": "error", "sequence_number": count, **error, "param": None}) + b"\n\n")
            break
        await response.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")
        if answer.delay_ms:
            await asyncio.sleep(answer.delay_ms / 1000)
    await response.write_eof()
    return response
