"""``POST /v1/chat/completions`` as OpenAI answers it (OpenRouter's is the same shape): the request
checks with their error bodies, ``chat.completion`` and ``chat.completion.chunk`` SSE ending with
``data: [DONE]`` (a usage chunk with empty ``choices`` first when ``stream_options.include_usage``)."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from provider_fakes.base import Answer, arguments_text, call_id, json_response, split_words, tokens

CHAT_FIELDS = frozenset({
    "model", "messages", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p",
    "max_tokens", "max_completion_tokens", "stop", "n", "response_format", "reasoning_effort", "seed", "user", "logprobs",
    "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias", "metadata", "store", "service_tier", "modalities",
    "prediction", "audio", "web_search_options", "verbosity", "prompt_cache_key", "safety_identifier",
})  # fmt: skip
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def check_messages(messages: Any, invalid: Any) -> str:
    """OpenAI's message rules; returns the last user text."""
    if not isinstance(messages, list) or not messages:
        raise invalid("[] is too short - 'messages'", "messages")
    pending: list[str] = []
    last_user = ""
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise invalid(f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
                          f"messages[{index}].role")  # fmt: skip
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                raise invalid("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                              f"messages.[{index}].role")  # fmt: skip
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            raise invalid("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
                          f"The following tool_call_ids did not have response messages: {', '.join(pending)}", "messages")  # fmt: skip
        if role == "assistant":
            pending = [c.get("id") for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        if role == "user":
            last_user = text_of(message.get("content"))
    return last_user


def check_chat(body: Any, models: dict[str, dict[str, Any]], invalid: Any, missing: Any, unsupported: Any) -> tuple[str, dict[str, Any]]:
    """The request checks; returns (last user text, the model's traits)."""
    if not isinstance(body, dict):
        raise invalid("We could not parse the JSON body of your request.", None)
    for name in body:
        if name not in CHAT_FIELDS and name not in ("reasoning", "provider", "models", "transforms", "plugins", "usage"):
            raise invalid(f"Unrecognized request argument supplied: {name}", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", None)
    traits = models.get(model)
    if traits is None or traits.get("embeddings") or traits.get("images"):
        raise missing(model)
    user = check_messages(body.get("messages"), invalid)
    reasoning = traits.get("reasoning", False)
    if "reasoning_effort" in body and not reasoning:
        raise unsupported("Unsupported parameter: 'reasoning_effort' is not supported with this model.", "reasoning_effort", "unsupported_parameter")
    if reasoning and body.get("temperature") not in (None, 1):
        raise unsupported(f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. Only the default (1) value is supported.",
                          "temperature", "unsupported_value")  # fmt: skip
    if reasoning and "max_tokens" in body and traits.get("strict_max_tokens"):
        raise unsupported("Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                          "max_tokens", "unsupported_parameter")  # fmt: skip
    return user, traits


def usage(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion + reasoning, "total_tokens": prompt + completion + reasoning,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}  # fmt: skip


class StreamCut(Exception):
    """A scripted failure mid-stream: the error went out, the stream ends."""


def _finish(answer: Answer) -> str:
    return answer.finish or ("tool_calls" if answer.tool_calls else "stop")


async def respond(request: web.Request, body: dict[str, Any], answer: Answer, *, reasoning_field: str | None, think: bool,
                  preamble: bytes = b"") -> web.StreamResponse:
    """The completion, streamed or whole. ``reasoning_field``: the delta/message field reasoning
    text goes in (OpenRouter's ``reasoning``), None when the API never shows it (OpenAI)."""
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    prompt = tokens(orjson.dumps(body.get("messages")).decode())
    text = answer.text if answer.text is not None else ("" if answer.tool_calls else "Hello.")
    reasoning_text = (answer.reasoning or "Thinking it over.") if think else ""
    reasoning = tokens(reasoning_text)
    calls = [{"id": c.get("id") or call_id(), "type": "function", "function": {"name": c["name"], "arguments": arguments_text(c)}}
             for c in answer.tool_calls]  # fmt: skip
    if body.get("stream") is not True:
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None, "annotations": []}
        if calls:
            message["tool_calls"] = calls
        if reasoning_field and reasoning_text:
            message[reasoning_field] = reasoning_text
        return json_response(200, {"id": completion_id, "object": "chat.completion", "created": created, "model": body["model"],
                                   "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(answer)}],
                                   "usage": usage(prompt, tokens(text), reasoning), "service_tier": "default",
                                   "system_fingerprint": "fp_fake"})  # fmt: skip
    response = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
    await response.prepare(request)
    if preamble:
        await response.write(preamble)
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": body["model"],
            "service_tier": "default", "system_fingerprint": "fp_fake"}  # fmt: skip
    sent = 0

    async def chunk(delta: dict[str, Any] | None, finish: str | None = None, extra: dict[str, Any] | None = None) -> None:
        nonlocal sent
        if answer.stream_error is not None and sent >= int(answer.stream_error.get("after", 0)):
            await response.write(b"data: " + orjson.dumps({"error": answer.stream_error.get("error") or
                                                           {"message": "The server had an error while processing your request.",
                                                            "type": "server_error", "code": 500}}) + b"\n\n")  # fmt: skip
            raise StreamCut
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        await response.write(b"data: " + orjson.dumps({**head, "choices": choices, **(extra or {})}) + b"\n\n")
        sent += 1
        if answer.delay_ms:
            await asyncio.sleep(answer.delay_ms / 1000)

    try:
        await chunk({"role": "assistant", "content": "", "refusal": None})
        if reasoning_field:
            for piece in split_words(reasoning_text):
                await chunk({reasoning_field: piece})
        for piece in split_words(text):
            await chunk({"content": piece})
        for index, call in enumerate(calls):
            await chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"], "arguments": ""}}]})  # fmt: skip
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 12):
                await chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[start:start + 12]}}]})
        await chunk({}, _finish(answer))
        if (body.get("stream_options") or {}).get("include_usage"):
            await chunk(None, extra={"usage": usage(prompt, tokens(text), reasoning)})
        await response.write(b"data: [DONE]\n\n")
    except StreamCut:
        pass
    await response.write_eof()
    return response
