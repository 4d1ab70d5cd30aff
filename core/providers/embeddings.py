"""``POST /v1/embeddings`` on a provider: OpenAI-shaped wires take the body as it is (the model
renamed); Gemini's ``batchEmbedContents`` gets it translated, and its answer comes back in OpenAI's
shape (``encoding_format: base64`` = little-endian float32, as OpenAI sends it)."""

from __future__ import annotations

import base64
import struct
from typing import Any
from urllib.parse import quote

import orjson

from core.protocols.base import BadRequest
from core.providers.model import Provider


def inputs_of(body: dict[str, Any]) -> list[str]:
    """The texts to embed; token-id inputs (lists of integers) only OpenAI-shaped providers take."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) and all(isinstance(t, str) for t in raw) else None
    if not texts:
        raise BadRequest("'input' must be a non-empty string or array of strings for this provider", code="invalid_request", param="input")
    return texts


def check(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise BadRequest("'model' is required", code="invalid_request", param="model")
    raw = body.get("input")
    if raw is None or raw == "" or raw == []:
        raise BadRequest("'input' is required", code="invalid_request", param="input")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'", code="invalid_request", param="encoding_format")
    return body


def request_for(provider: Provider, body: dict[str, Any], model: str) -> tuple[str, bytes]:
    """(path, body) of the provider's embeddings call."""
    if provider.wire != "gemini":
        return "/embeddings", orjson.dumps({**body, "model": model})
    extra = {"outputDimensionality": body["dimensions"]} if isinstance(body.get("dimensions"), int) else {}
    requests = [{"model": f"models/{model}", "content": {"parts": [{"text": text}]}, **extra} for text in inputs_of(body)]
    return f"/v1beta/models/{quote(model, safe='')}:batchEmbedContents", orjson.dumps({"requests": requests})


def _vector(values: list[float], encoding: str | None) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    return values


def openai_answer(provider: Provider, body: dict[str, Any], model: str, reply_body: bytes) -> bytes:
    """A successful answer as OpenAI's ``CreateEmbeddingResponse`` (OpenAI-shaped ones pass as they are)."""
    if provider.wire != "gemini":
        return reply_body
    data = orjson.loads(reply_body)
    vectors = [e.get("values") or [] for e in data.get("embeddings") or [] if isinstance(e, dict)]
    encoding = body.get("encoding_format")
    tokens = sum(max(1, len(t) // 4) for t in inputs_of(body))  # Gemini reports no usage: an estimate
    return orjson.dumps({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": _vector(v, encoding)} for i, v in enumerate(vectors)],
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
