"""Client access keys through the management API (the proxy key or a dashboard session only: a
client key never manages anything).

* ``GET /admin/keys``: every key with its state (status, what it spent this period, requests in flight)
* ``POST /admin/keys``: create one; the answer holds the key (``api_key``) this once, never again
* ``GET /admin/keys/<id>``, ``PATCH /admin/keys/<id>`` (any of the creation fields), ``DELETE /admin/keys/<id>``
* ``POST /admin/keys/<id>/reset``: start its budget period over

Fields: ``label``, ``expires_at`` (unix seconds) or ``expires_in_days``, ``enabled``,
``allowed_models`` (names or globs; null: every model), ``budget``
(``{"limit", "unit": "tokens"|"usd", "period": "day"|"month"|"total"}`` or null),
``max_concurrency`` (null: no limit).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from werkzeug.exceptions import NotFound

from core.access.keys import KeySpecError
from dashboard.security import api_error, json_body, require_api_key, services

keys_api = Blueprint("keys", __name__, url_prefix="/admin/keys")


@keys_api.errorhandler(KeySpecError)
def _bad_spec(error: KeySpecError) -> Any:
    return api_error(400, str(error), "invalid_request")


def _body() -> dict[str, Any]:
    body = json_body()
    if body is None:
        raise KeySpecError("send a JSON object")
    return body


def _found(state: dict[str, Any] | None, key_id: str) -> Any:
    if state is None:
        raise NotFound(f"No client key {key_id}")
    return jsonify({"key": state})


@keys_api.get("")
@require_api_key
def list_keys() -> Any:
    return jsonify({"keys": services().keys.list()})


@keys_api.post("")
@require_api_key
def create_key() -> Any:
    state, secret = services().keys.create(_body())
    # ``api_key``: a member name the flow redaction knows, so mitmweb shows it as [redacted].
    response = jsonify({"key": state, "api_key": secret})
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@keys_api.get("/<key_id>")
@require_api_key
def show_key(key_id: str) -> Any:
    return _found(services().keys.show(key_id), key_id)


@keys_api.patch("/<key_id>")
@require_api_key
def change_key(key_id: str) -> Any:
    return _found(services().keys.update(key_id, _body()), key_id)


@keys_api.post("/<key_id>/reset")
@require_api_key
def reset_key(key_id: str) -> Any:
    return _found(services().keys.reset(key_id), key_id)


@keys_api.delete("/<key_id>")
@require_api_key
def delete_key(key_id: str) -> Any:
    if not services().keys.delete(key_id):
        raise NotFound(f"No client key {key_id}")
    return jsonify({"deleted": key_id})
