"""A faithful fake of OpenRouter at ``{base}/api/v1``: OpenAI's chat completions and embeddings
shapes, with OpenRouter's own model list (names, context, pricing, supported parameters), its
``reasoning`` request field and streamed ``delta.reasoning``, the ``: OPENROUTER PROCESSING``
comments it streams first, and its error envelope ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from provider_fakes.base import Refusal
from provider_fakes.openai import FakeOpenAI

MODELS: dict[str, dict[str, Any]] = {
    "meta-llama/llama-3.3-70b-instruct": {"name": "Meta: Llama 3.3 70B Instruct", "context": 131072, "output": 16384},
    "deepseek/deepseek-r1": {"name": "DeepSeek: R1", "context": 163840, "output": 65536, "reasoning": True},
    "openai/text-embedding-3-small": {"name": "OpenAI: Text Embedding 3 Small", "context": 8192, "embeddings": True, "dimensions": 1536},
}


class FakeOpenRouter(FakeOpenAI):
    name = "openrouter"
    prefix = "/api/v1"
    models = MODELS
    reasoning_field = "reasoning"
    stream_preamble = b": OPENROUTER PROCESSING\n\n"

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(f"{self.prefix}/chat/completions", self._chat)
        router.add_post(f"{self.prefix}/embeddings", self._embeddings)
        router.add_get(f"{self.prefix}/models", self._list_models)

    def refusal(self, status: int, message: str, kind: str) -> Refusal:
        words = {401: "No auth credentials found" if "Missing" in message else "User not found.", 429: "Rate limit exceeded: free-models-per-min.",
                 402: "Insufficient credits. This account never purchased credits."}  # fmt: skip
        return Refusal(status, {"error": {"code": status, "message": words.get(status, message)}},
                       {"retry-after": "3"} if status == 429 else None)  # fmt: skip

    @staticmethod
    def invalid(message: str, param: str | None, code: str | None = None) -> Refusal:
        return Refusal(400, {"error": {"code": 400, "message": message}})

    @staticmethod
    def missing(model: str) -> Refusal:
        return Refusal(400, {"error": {"code": 400, "message": f"{model} is not a valid model ID"}})

    def think(self, body: dict[str, Any], traits: dict[str, Any]) -> bool:
        reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
        return bool(traits.get("reasoning") and (reasoning.get("effort") or reasoning.get("max_tokens") or reasoning.get("enabled")))

    def model_entry(self, model: str) -> dict[str, Any]:
        traits = self.models[model]
        parameters = ["max_tokens", "temperature", "top_p", "stop", "tools", "tool_choice", "response_format"]
        if traits.get("reasoning"):
            parameters += ["reasoning", "include_reasoning"]
        return {
            "id": model, "canonical_slug": model, "name": traits["name"], "created": 1_733_000_000, "description": traits["name"],
            "context_length": traits["context"],
            "architecture": {"modality": "text->text", "input_modalities": ["text"], "output_modalities": ["embeddings" if traits.get("embeddings") else "text"],
                             "tokenizer": "Other", "instruct_type": None},
            "pricing": {"prompt": "0.0000001", "completion": "0.0000004", "request": "0", "image": "0"},
            "top_provider": {"context_length": traits["context"], "max_completion_tokens": traits.get("output"), "is_moderated": False},
            "per_request_limits": None, "supported_parameters": parameters,
        }  # fmt: skip
