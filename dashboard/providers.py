"""Management API for API-key providers and model routes under ``/admin`` (README.md, "Management
API", lists the shapes). Keys are masked in every answer except the export, which exists to move
providers and is therefore a secret itself."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import NotFound

from core.providers.model import DEFAULT_BASE_URL, KIND_WIRES, KINDS, POOL, Provider
from core.providers.registry import ProviderInputError
from dashboard.security import api_error, json_body, require_api_key, services

providers_api = Blueprint("providers", __name__, url_prefix="/admin")
REFRESH_TIMEOUT = 40.0


@providers_api.errorhandler(ProviderInputError)
def _bad_input(error: ProviderInputError) -> Any:
    return api_error(400, str(error), "invalid_provider")


@providers_api.errorhandler(KeyError)
def _missing(error: KeyError) -> Any:
    return api_error(404, f"No provider or key {error.args[0]!r}", "not_found")


def _body() -> dict[str, Any]:
    body = json_body()
    if body is None:
        raise ProviderInputError("Request body must be a JSON object")
    return body


def _refreshed(provider: Provider) -> Provider:
    """The provider after asking it for its models (a failure stays on the provider as models_error)."""
    svc = services()
    if not provider.enabled or not provider.keys:
        return provider
    return svc.run_on_loop(svc.providers.refresh_models(provider.id), timeout=REFRESH_TIMEOUT) or provider


@providers_api.get("/providers")
@require_api_key
def list_providers() -> Any:
    registry = services().providers.registry
    return jsonify({"providers": [p.public() for p in registry.all()], "routes": [r.as_dict() for r in registry.routes],
                    "kinds": {k: {"base_url": DEFAULT_BASE_URL.get(k), "wires": KIND_WIRES[k]} for k in KINDS}})  # fmt: skip


@providers_api.post("/providers")
@require_api_key
def add_provider() -> Any:
    provider = services().providers.registry.add(_body())
    return jsonify({"provider": _refreshed(provider).public()}), 201


@providers_api.get("/providers/<provider_id>")
@require_api_key
def get_provider(provider_id: str) -> Any:
    provider = services().providers.registry.get(provider_id)
    if provider is None:
        raise NotFound(f"No provider {provider_id!r}")
    return jsonify({"provider": provider.public()})


@providers_api.patch("/providers/<provider_id>")
@require_api_key
def update_provider(provider_id: str) -> Any:
    registry = services().providers.registry
    before = registry.get(provider_id)
    provider = registry.update(provider_id, _body())
    if before is not None and (before.base_url, before.wire, before.enabled) != (provider.base_url, provider.wire, provider.enabled):
        provider = _refreshed(provider)
    return jsonify({"provider": provider.public()})


@providers_api.delete("/providers/<provider_id>")
@require_api_key
def delete_provider(provider_id: str) -> Any:
    services().providers.registry.delete(provider_id)
    return jsonify({"deleted": provider_id})


@providers_api.post("/providers/<provider_id>/keys")
@require_api_key
def add_keys(provider_id: str) -> Any:
    body = _body()
    raw = body.get("keys") if "keys" in body else body
    registry = services().providers.registry
    added = registry.add_keys(provider_id, raw)
    provider = registry.get(provider_id)
    if added and provider is not None and (provider.models_error or provider.models_fetched_at is None):
        _refreshed(provider)  # the first working key: the model list can load now
    return jsonify({"added": [k.public() for k in added]}), 201


@providers_api.patch("/providers/<provider_id>/keys/<key_id>")
@require_api_key
def update_key(provider_id: str, key_id: str) -> Any:
    return jsonify({"key": services().providers.registry.update_key(provider_id, key_id, _body()).public()})


@providers_api.delete("/providers/<provider_id>/keys/<key_id>")
@require_api_key
def delete_key(provider_id: str, key_id: str) -> Any:
    services().providers.registry.delete_key(provider_id, key_id)
    return jsonify({"deleted": key_id})


@providers_api.post("/providers/<provider_id>/models/refresh")
@require_api_key
def refresh_models(provider_id: str) -> Any:
    svc = services()
    if svc.providers.registry.get(provider_id) is None:
        raise NotFound(f"No provider {provider_id!r}")
    provider = svc.run_on_loop(svc.providers.refresh_models(provider_id), timeout=REFRESH_TIMEOUT)
    return jsonify({"provider": provider.public() if provider else None})


@providers_api.get("/model-routes")
@require_api_key
def list_routes() -> Any:
    return jsonify({"routes": [r.as_dict() for r in services().providers.registry.routes]})


@providers_api.put("/model-routes")
@require_api_key
def set_routes() -> Any:
    body = request.get_json(silent=True)
    raw = body.get("routes") if isinstance(body, dict) else body
    routes = services().providers.registry.set_routes(raw)
    return jsonify({"routes": [r.as_dict() for r in routes]})


@providers_api.get("/model-routes/resolve")
@require_api_key
def resolve_route() -> Any:
    """Where a model name goes: ``?model=`` → the targets in failover order, and why."""
    name = (request.args.get("model") or "").strip()
    if not name:
        return api_error(400, "?model= is required", "invalid_request")
    svc = services()
    model = svc.catalog.resolve(name)
    match = svc.providers.registry.table.match(model.route) if model.route else None
    if match is None:
        targets = [{"provider": POOL, "model": model.id}]
        rule = "pool" if model.known else "pool_default"
    else:
        targets = [{"provider": t.provider, "model": svc.catalog.pool_model(t.model or match.key) if t.provider == POOL else t.model or match.key}
                   for t in match.targets]  # fmt: skip
        rule = match.rule
    return jsonify({"model": name, "rule": rule, "targets": targets})


@providers_api.get("/providers/export")
@require_api_key
def export_providers() -> Any:
    """The import format, with every key in clear text: keep the file secret."""
    response = jsonify(services().providers.registry.export())
    response.headers["Cache-Control"] = "no-store"
    return response


@providers_api.post("/providers/import")
@require_api_key
def import_providers() -> Any:
    return jsonify(services().providers.registry.import_all(request.get_json(silent=True)))
