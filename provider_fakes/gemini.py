"""A faithful fake of the Gemini API (generativelanguage): ``models/{m}:generateContent``,
``:streamGenerateContent`` (``?alt=sse``, else a streamed JSON array), ``:embedContent``,
``:batchEmbedContents``, ``GET models`` (paged) and ``GET models/{m}``; the key in ``x-goog-api-key``
or ``?key=``, Google's error envelope ``{"error": {"code", "message", "status", "details"}}``
(an invalid key is a 400 ``API_KEY_INVALID``), thought parts and function-call thought signatures."""

from __future__ import annotations

import asyncio
import base64
import secrets
from typing import Any

import orjson
from aiohttp import web

from provider_fakes.base import Answer, FakeProvider, Refusal, arguments_text, json_response, split_words, tokens, vector

MODELS: dict[str, dict[str, Any]] = {
    "gemini-2.5-flash": {"name": "Gemini 2.5 Flash", "thinking": True},
    "gemini-2.0-flash": {"name": "Gemini 2.0 Flash", "thinking": False},
    "gemini-3-pro-preview": {"name": "Gemini 3 Pro Preview", "thinking": True, "signatures": True},
    "gemini-embedding-001": {"name": "Gemini Embedding 001", "embeddings": True},
}
FIELDS = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent"})
SIGNATURE = b"fake-gemini-thought:"  # inside the base64 bytes of this fake's thought signatures


def new_signature() -> str:
    return base64.b64encode(SIGNATURE + secrets.token_bytes(16)).decode()


def is_ours(signature: Any) -> bool:
    try:
        return isinstance(signature, str) and base64.b64decode(signature, validate=True).startswith(SIGNATURE)
    except ValueError:
        return False


_USER_DATA = frozenset({"args", "response", "parameters", "parametersJsonSchema", "responseSchema", "responseJsonSchema"})


def camel_case(value: Any) -> Any:
    """The API reads proto JSON, which takes every field by its lowerCamelCase or its snake_case name
    (google-genai 3 sends some snake_case); the fake reads them all as camelCase. What the caller
    wrote as data (function args, schemas) is left as it is."""
    if isinstance(value, list):
        return [camel_case(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        head, *rest = key.split("_")
        name = head + "".join(word[:1].upper() + word[1:] for word in rest)
        out[name] = item if name in _USER_DATA else camel_case(item)
    return out


def google_error(code: int, status: str, message: str, details: list[Any] | None = None) -> Refusal:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return Refusal(code, {"error": error})


def invalid(message: str) -> Refusal:
    return google_error(400, "INVALID_ARGUMENT", message)


def check_contents(body: dict[str, Any], model: str) -> str:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified\n")
    last_user, previous_calls = "", 0
    for index, content in enumerate(contents):
        role = content.get("role", "user") if isinstance(content, dict) else None
        if role not in ("user", "model"):
            raise invalid("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise invalid(f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty.\n")
        responses = [p for p in parts if isinstance(p, dict) and "functionResponse" in p]
        if responses and not previous_calls:
            raise invalid("Please ensure that function response turn comes immediately after a function call turn.")
        calls = [p for p in parts if isinstance(p, dict) and "functionCall" in p]
        if calls and MODELS[model].get("signatures") and not is_ours(calls[0].get("thoughtSignature")):
            raise invalid(f"Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, "
                          f"and missing thought_signature may lead to degraded model performance. Additional data, function call "
                          f"`default_api:{calls[0]['functionCall'].get('name')}` , position {index + 1}. Please refer to "
                          f"https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")  # fmt: skip
        previous_calls = len(calls)
        if role == "user":
            last_user = "".join(p.get("text", "") for p in parts if isinstance(p, dict)) or last_user
    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise invalid("* GenerateContentRequest.tools[0].function_declarations[0]: parameters and parameters_json_schema cannot both be set.\n")
    return last_user


class FakeGemini(FakeProvider):
    name = "gemini"

    def routes(self, router: web.UrlDispatcher) -> None:
        for version in ("v1", "v1beta"):  # google-genai 3 defaults to v1; the REST docs use v1beta
            router.add_post(f"/{version}/models/{{model}}:{{action}}", self._action)
            router.add_get(f"/{version}/models", self._list)
            router.add_get(f"/{version}/models/{{model}}", self._get)

    def key_of(self, request: web.Request) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query.get("key") or None

    def refusal(self, status: int, message: str, kind: str) -> Refusal:
        if status == 401 and "Missing" in message:
            return google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). "
                                "Please use API Key or other form of API consumer identity to call this API.")  # fmt: skip
        if status == 401:
            return google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                 "metadata": {"service": "generativelanguage.googleapis.com"}}])  # fmt: skip
        if status == 429:
            return google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details.", [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "5s"}])  # fmt: skip
        return google_error(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT", message)

    def _entry(self, model: str) -> dict[str, Any]:
        traits = MODELS[model]
        methods = ["embedContent", "countTextTokens", "countTokens"] if traits.get("embeddings") else \
            ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]  # fmt: skip
        entry = {"name": f"models/{model}", "version": "001", "displayName": traits["name"], "description": traits["name"],
                 "inputTokenLimit": 2048 if traits.get("embeddings") else 1048576, "outputTokenLimit": 1 if traits.get("embeddings") else 65536,
                 "supportedGenerationMethods": methods}  # fmt: skip
        if traits.get("thinking"):
            entry.update(temperature=1, topP=0.95, topK=64, maxTemperature=2, thinking=True)
        return entry

    async def _list(self, request: web.Request) -> web.Response:
        await self.receive(request)
        ids = list(MODELS)
        size = int(request.query.get("pageSize", 50))
        start = int(request.query.get("pageToken") or 0)
        body: dict[str, Any] = {"models": [self._entry(m) for m in ids[start:start + size]]}
        if start + size < len(ids):
            body["nextPageToken"] = str(start + size)
        return json_response(200, body)

    async def _get(self, request: web.Request) -> web.Response:
        await self.receive(request)
        model = request.match_info["model"]
        if model not in MODELS:
            raise google_error(404, "NOT_FOUND", f"models/{model} is not found for API version {request.path.split('/')[1]}, or is not supported for generateContent.")
        return json_response(200, self._entry(model))

    async def _action(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.receive(request)
        model, action = request.match_info["model"], request.match_info["action"]
        if model not in MODELS:
            raise google_error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, or is not supported for {action}. "
                               "Call ListModels to see the list of available models and their supported methods.")  # fmt: skip
        if not isinstance(body, dict):
            raise invalid("Invalid JSON payload received.")
        body = camel_case(body)
        if action in ("embedContent", "batchEmbedContents"):
            return self._embed(model, action, body)
        if action not in ("generateContent", "streamGenerateContent") or MODELS[model].get("embeddings"):
            raise google_error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, or is not supported for {action}.")
        for name in body:
            if name not in FIELDS:
                raise invalid(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        thinking = (body.get("generationConfig") or {}).get("thinkingConfig")
        if thinking and not MODELS[model].get("thinking"):
            raise invalid("Thinking is not enabled for this model.")
        user = check_contents(body, model)
        return await self._generate(request, model, action, body, self.answer(user), bool(thinking and thinking.get("includeThoughts")))

    def _embed(self, model: str, action: str, body: dict[str, Any]) -> web.Response:
        if not MODELS[model].get("embeddings"):
            raise google_error(400, "INVALID_ARGUMENT", f"models/{model} does not support embeddings")
        requests = body.get("requests") if action == "batchEmbedContents" else [body]
        if not isinstance(requests, list) or not requests:
            raise invalid("* BatchEmbedContentsRequest.requests: requests must not be empty\n")
        out = []
        for index, item in enumerate(requests):
            if action == "batchEmbedContents" and item.get("model") != f"models/{model}":
                raise invalid(f"* BatchEmbedContentsRequest.requests[{index}].model: the model in each request must be the model of the batch call\n")
            text = "".join(p.get("text", "") for p in (item.get("content") or {}).get("parts") or [])
            out.append({"values": vector(text, item.get("outputDimensionality") or 768)})
        return json_response(200, {"embeddings": out} if action == "batchEmbedContents" else {"embedding": out[0]})

    async def _generate(self, request: web.Request, model: str, action: str, body: dict[str, Any], answer: Answer,
                        thoughts: bool) -> web.StreamResponse:  # fmt: skip
        parts: list[dict[str, Any]] = []
        if thoughts:
            parts += [{"text": w, "thought": True} for w in split_words(answer.reasoning or "Thinking about it.")]
        text = answer.text if answer.text is not None else ("" if answer.tool_calls else "Hello.")
        parts += [{"text": w} for w in split_words(text)]
        for index, call in enumerate(answer.tool_calls):
            part: dict[str, Any] = {"functionCall": {"name": call["name"], "args": orjson.loads(arguments_text(call))}}
            if index == 0 and MODELS[model].get("thinking"):
                part["thoughtSignature"] = new_signature()
            parts.append(part)
        finish = "MAX_TOKENS" if answer.finish == "length" else "STOP"
        prompt = tokens(orjson.dumps(body.get("contents")).decode())
        thought_tokens = tokens("".join(p["text"] for p in parts if p.get("thought")))
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": tokens(text) or 1, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
        if thought_tokens:
            usage["thoughtsTokenCount"] = thought_tokens
        usage["totalTokenCount"] = prompt + usage["candidatesTokenCount"] + thought_tokens
        response_id = secrets.token_urlsafe(12)

        def chunk(chunk_parts: list[dict[str, Any]], last: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": chunk_parts, "role": "model"}, "index": 0}
            out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": response_id}
            if last:
                candidate["finishReason"] = finish
                out["usageMetadata"] = usage
            else:
                out["usageMetadata"] = {"promptTokenCount": prompt, "totalTokenCount": prompt}
            return out

        if action == "generateContent":
            return json_response(200, chunk(parts, True))
        sse = request.query.get("alt") == "sse"
        response = web.StreamResponse(headers={"content-type": "text/event-stream" if sse else "application/json; charset=UTF-8"})
        await response.prepare(request)
        pieces = [[p] for p in parts] or [[{"text": ""}]]
        for count, piece in enumerate(pieces):
            last = count == len(pieces) - 1
            if answer.stream_error is not None and count >= int(answer.stream_error.get("after", 0)):
                error = {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}
                await response.write(b"data: " + orjson.dumps(error) + b"\r\n\r\n" if sse else b"," + orjson.dumps(error) + b"]")
                break
            data = orjson.dumps(chunk(piece, last))
            if sse:
                await response.write(b"data: " + data + b"\r\n\r\n")
            else:
                await response.write((b"[" if count == 0 else b",\r\n") + data + (b"]" if last else b""))
            if answer.delay_ms:
                await asyncio.sleep(answer.delay_ms / 1000)
        await response.write_eof()
        return response
