"""A provider's model list, as its own API lists it (each wire's list endpoint, pages followed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import orjson

from core.providers.errors import classify
from core.providers.model import Provider, ProviderModel
from core.providers.wires.anthropic import VERSION as ANTHROPIC_VERSION
from core.upstream.transport import SimpleResponse

Get = Callable[[str, dict[str, str]], Awaitable[SimpleResponse]]
MAX_PAGES = 20


def auth_headers(provider: Provider, key: str) -> dict[str, str]:
    """How a wire presents its key."""
    if provider.wire == "anthropic":
        return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
    if provider.wire == "gemini":
        return {"x-goog-api-key": key}
    return {"Authorization": f"Bearer {key}"}


async def fetch_models(get: Get, provider: Provider, key: str) -> list[ProviderModel]:
    """Every model the provider lists; raises ``UpstreamError`` when it answers with an error."""
    headers = {**provider.headers, "Accept": "application/json", **auth_headers(provider, key)}
    base = provider.base_url.rstrip("/")
    models: list[ProviderModel] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        if provider.wire == "anthropic":
            url = f"{base}/v1/models?" + urlencode({"limit": 1000, **({"after_id": cursor} if cursor else {})})
        elif provider.wire == "gemini":
            url = f"{base}/v1beta/models?" + urlencode({"pageSize": 1000, **({"pageToken": cursor} if cursor else {})})
        else:
            url = f"{base}/models"
        reply = await get(url, headers)
        if reply.status >= 400:
            raise classify(provider, reply.status, reply.headers, reply.body)
        try:
            body: Any = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise ValueError(f"{provider.name}: the model list is not a JSON object")
        page, cursor = _page(provider.wire, body)
        models += page
        if not cursor:
            break
    return models


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _page(wire: str, body: dict[str, Any]) -> tuple[list[ProviderModel], str | None]:
    if wire == "gemini":
        models = []
        for raw in body.get("models") or []:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                continue
            methods = raw.get("supportedGenerationMethods") or []
            models.append(ProviderModel(raw["name"].removeprefix("models/"), raw.get("displayName"), _int(raw.get("inputTokenLimit")),
                                        _int(raw.get("outputTokenLimit")), "embedContent" in methods and "generateContent" not in methods))  # fmt: skip
        return models, body.get("nextPageToken") or None
    entries = [raw for raw in body.get("data") or [] if isinstance(raw, dict) and isinstance(raw.get("id"), str)]
    if wire == "anthropic":
        models = [ProviderModel(raw["id"], raw.get("display_name"), _int(raw.get("max_input_tokens")), _int(raw.get("max_tokens")))
                  for raw in entries]  # fmt: skip
        return models, (body.get("last_id") if body.get("has_more") else None)
    models = []
    for raw in entries:  # OpenAI's bare entries; OpenRouter adds a name, the context and the output limit
        top = raw.get("top_provider") if isinstance(raw.get("top_provider"), dict) else {}
        name = raw.get("name") if isinstance(raw.get("name"), str) else None
        models.append(ProviderModel(raw["id"], name, _int(raw.get("context_length")), _int(top.get("max_completion_tokens"))))
    return models, None
