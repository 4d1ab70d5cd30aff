"""The endpoints that are not turns: ``/v1/embeddings`` (API-key providers only: the Codex backend
has no embedding models) and ``/v1/images/generations`` / ``/edits`` (a provider when the model
routes to one that has images, else the Codex backend's image_generation tool)."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.catalog import ResolvedModel
from core.codex.events import Usage
from core.gateway.jobs import Called, Job, translate
from core.protocols import images, openai_chat
from core.protocols.base import BadRequest, ClientRequest, NotFound, Reply
from core.providers import embeddings as embedding_bodies
from core.providers import errors
from core.providers.caller import CallReply
from core.providers.model import Provider
from core.services import Services
from core.turn.model import Prepared, Turn

NO_EMBEDDINGS = ("No provider serves embeddings for '{model}'. The ChatGPT (Codex) backend has no embedding models: add a provider "
                 "that has this model (OpenAI, OpenRouter, Gemini or an OpenAI-compatible server) on the dashboard's Providers page, "
                 "then name the model, or '<provider id>/<model>'.")  # fmt: skip


def _called(reply: CallReply, provider: Provider, usage: Usage | None = None) -> Called:
    if reply.status >= 400:
        raise errors.for_client(errors.classify(provider, reply.status, reply.headers, reply.body))
    content_type = reply.headers.get("content-type") or "application/json"
    return Called(Reply(reply.status, reply.body, {"content-type": content_type}), reply.provider, usage)


def _prompt_tokens(body: bytes) -> Usage | None:
    try:
        usage = orjson.loads(body).get("usage") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return Usage(input_tokens=tokens) if isinstance(tokens, int) else None


def embeddings(request: ClientRequest, services: Services) -> Reply | Job:
    body = embedding_bodies.check(request.json())
    model = body["model"].strip()
    router, caller = services.providers.router, services.providers.caller
    pairs = router.capable(model, "embeddings") if router is not None else []
    if not pairs or caller is None:
        raise NotFound(NO_EMBEDDINGS.format(model=model), code="model_not_found", param="model")
    providers = {provider.id: provider for provider, _ in pairs}

    async def send(provider: Provider, upstream_model: str) -> CallReply:
        path, payload = embedding_bodies.request_for(provider, body, upstream_model)
        reply = await caller.call(provider, "POST", path, payload)
        if reply.status < 400:
            reply.body = embedding_bodies.openai_answer(provider, body, upstream_model, reply.body)
        return reply

    async def call() -> Called:
        reply = await router.call(pairs, send)
        return _called(reply, providers[reply.provider], _prompt_tokens(reply.body))

    turn = Turn("embeddings", body, ResolvedModel(pairs[0][1], model), False)
    return Job(openai_chat, Prepared(turn, None), request.path, call=call, body=request.body)


def images_endpoint(request: ClientRequest, services: Services) -> Reply | Job:
    fields, files = images.read_form(request)
    model = fields.get("model")
    router, caller = services.providers.router, services.providers.caller
    pairs = router.capable(model, "images") if router is not None and isinstance(model, str) and model else []
    if not pairs or caller is None:
        prepared = translate(images, images.parse_request, request, services)
        return prepared if isinstance(prepared, Reply) else Job(images, prepared, request.path, body=request.body)
    if fields.get("stream") in (True, "true", "True", "1"):
        raise BadRequest("Streamed images come from the Codex backend only; ask this provider's model without 'stream'",
                         code="invalid_request", param="stream")  # fmt: skip
    path = "/images/edits" if request.path.endswith("/edits") else "/images/generations"
    providers = {provider.id: provider for provider, _ in pairs}

    async def send(provider: Provider, upstream_model: str) -> CallReply:
        renamed: dict[str, Any] = {**fields, "model": upstream_model}
        content_type, payload = images.encode_form(renamed, files) if files else ("application/json", orjson.dumps(renamed))
        return await caller.call(provider, "POST", path, payload, content_type)

    async def call() -> Called:
        reply = await router.call(pairs, send)
        return _called(reply, providers[reply.provider])

    turn = Turn("images", fields, ResolvedModel(pairs[0][1], model), False)
    return Job(openai_chat, Prepared(turn, None), request.path, call=call, body=request.body)
