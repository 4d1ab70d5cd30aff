"""A faithful fake of OpenAI's API at ``{base}/v1``: chat completions, responses, embeddings, image
generations and edits, and the model list, with OpenAI's authentication and error envelope
(``{"error": {"message", "type", "param", "code"}}``)."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

from aiohttp import web

from provider_fakes import openai_chat, openai_responses
from provider_fakes.base import FakeProvider, Refusal, json_response, tokens, vector

# 1x1 PNG: what the image endpoints return.
TINY_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
MODELS: dict[str, dict[str, Any]] = {
    "gpt-4.1-mini": {},
    "gpt-4o-mini": {},
    "o4-mini": {"reasoning": True, "strict_max_tokens": True},
    "gpt-5-mini": {"reasoning": True, "strict_max_tokens": True},
    "text-embedding-3-small": {"embeddings": True, "dimensions": 1536},
    "text-embedding-3-large": {"embeddings": True, "dimensions": 3072},
    "gpt-image-1": {"images": True},
}


class FakeOpenAI(FakeProvider):
    name = "openai"
    prefix = "/v1"
    models = MODELS

    def routes(self, router: web.UrlDispatcher) -> None:
        p = self.prefix
        router.add_post(f"{p}/chat/completions", self._chat)
        router.add_post(f"{p}/responses", self._responses)
        router.add_post(f"{p}/embeddings", self._embeddings)
        router.add_post(f"{p}/images/generations", self._images)
        router.add_post(f"{p}/images/edits", self._images)
        router.add_get(f"{p}/models", self._list_models)

    def start(self, path_prefix: str = "") -> str:
        return super().start(path_prefix or self.prefix)

    def key_of(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth[7:].strip() or None if auth.startswith("Bearer ") else None

    def refusal(self, status: int, message: str, kind: str) -> Refusal:
        if status == 401:
            return Refusal(401, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
        if status == 429:
            return Refusal(429, {"error": {"message": "Rate limit reached for requests. Please try again in 2s.", "type": "requests",
                                           "param": None, "code": "rate_limit_exceeded"}}, {"retry-after": "2"})  # fmt: skip
        kind_of = "server_error" if status >= 500 else "invalid_request_error"
        return Refusal(status, {"error": {"message": message, "type": kind_of, "param": None, "code": None}})

    # --- refusals in OpenAI's words --------------------------------------------------------------------------

    @staticmethod
    def invalid(message: str, param: str | None, code: str | None = None) -> Refusal:
        return Refusal(400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})

    @staticmethod
    def missing(model: str) -> Refusal:
        return Refusal(404, {"error": {"message": f"The model `{model}` does not exist or you do not have access to it.",
                                       "type": "invalid_request_error", "param": None, "code": "model_not_found"}})  # fmt: skip

    def think(self, body: dict[str, Any], traits: dict[str, Any]) -> bool:
        return bool(traits.get("reasoning") and body.get("reasoning_effort") not in (None, "none", "minimal"))

    reasoning_field: str | None = None  # OpenAI never shows chat reasoning text
    stream_preamble = b""

    # --- endpoints ---------------------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.receive(request)
        user, traits = openai_chat.check_chat(body, self.models, lambda m, p: self.invalid(m, p), self.missing,
                                              lambda m, p, c: self.invalid(m, p, c))  # fmt: skip
        return await openai_chat.respond(request, body, self.answer(user), reasoning_field=self.reasoning_field, think=self.think(body, traits),
                                       preamble=self.stream_preamble)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.receive(request)
        user, traits = openai_responses.check(body, self.models, self.invalid, self.missing)
        think = bool(traits.get("reasoning") and (body.get("reasoning") or {}).get("effort") not in (None, "none", "minimal"))
        return await openai_responses.respond(request, body, self.answer(user), think)

    async def _list_models(self, request: web.Request) -> web.Response:
        await self.receive(request)
        return json_response(200, {"object": "list", "data": [self.model_entry(m) for m in self.models]})

    def model_entry(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1_715_367_049, "owned_by": "system"}

    async def _embeddings(self, request: web.Request) -> web.Response:
        _, body = await self.receive(request)
        if not isinstance(body, dict):
            raise self.invalid("We could not parse the JSON body of your request.", None)
        model = body.get("model")
        traits = self.models.get(model) if isinstance(model, str) else None
        if traits is None:
            raise self.missing(str(model))
        if not traits.get("embeddings"):
            raise self.invalid(f"This model does not support embeddings: {model}", "model")
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) and raw else None
        if texts is None:
            raise self.invalid("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", None)
        dimensions = body.get("dimensions") or traits["dimensions"]
        data = []
        for index, text in enumerate(texts):
            values = vector(str(text), dimensions)
            embedding: Any = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode() if body.get("encoding_format") == "base64" else values
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        used = sum(tokens(str(t)) for t in texts)
        return json_response(200, {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": used, "total_tokens": used}})

    async def _images(self, request: web.Request) -> web.Response:
        _, fields = await self.receive(request)
        if not isinstance(fields, dict):
            raise self.invalid("We could not parse the JSON body of your request.", None)
        if request.path.endswith("/edits") and not any(name in ("image", "image[]") for name in fields.get("_files") or []) and not fields.get("images"):
            raise self.invalid("Missing required parameter: 'image'.", "image", "missing_required_parameter")
        model = fields.get("model") or "gpt-image-1"
        if not self.models.get(model, {}).get("images"):
            raise self.missing(model)
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise self.invalid("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
        if "response_format" in fields and fields["response_format"] != "b64_json":
            raise self.invalid("Unknown parameter: 'response_format'.", "response_format", "unknown_parameter")
        used = tokens(prompt)
        return json_response(200, {
            "created": int(time.time()), "background": "opaque", "output_format": fields.get("output_format") or "png",
            "quality": "medium", "size": "1024x1024", "data": [{"b64_json": TINY_PNG}],
            "usage": {"input_tokens": used, "input_tokens_details": {"image_tokens": 0, "text_tokens": used}, "output_tokens": 272,
                      "total_tokens": used + 272},
        })  # fmt: skip
