"""Management API for ChatGPT accounts: ``/auth/accounts`` (shapes as the seed's README)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from core.accounts.service import AccountInputError
from dashboard.security import api_error, require_api_key, services

accounts_api = Blueprint("accounts", __name__, url_prefix="/auth")


def _json_body() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


@accounts_api.get("/accounts")
@require_api_key
def list_accounts() -> Any:
    return jsonify({"accounts": [a.public() for a in services().accounts.list()]})


@accounts_api.post("/accounts")
@require_api_key
def add_account() -> Any:
    body = _json_body()
    if body is None:
        return api_error(400, "Request body must be a JSON object", "invalid_request")
    try:
        account, created = services().accounts.add(body)
    except AccountInputError as exc:
        return api_error(400, str(exc), "invalid_account")
    return jsonify({"account": account.public(), "created": created}), 201 if created else 200


@accounts_api.post("/accounts/import")
@require_api_key
def import_accounts() -> Any:
    body = _json_body()
    entries = body.get("accounts") if body is not None else None
    if not isinstance(entries, list):
        return api_error(400, "Body must be {\"accounts\": [...]}", "invalid_request")
    return jsonify(services().accounts.import_many(entries).as_dict())


@accounts_api.delete("/accounts/<account_id>")
@require_api_key
def delete_account(account_id: str) -> Any:
    if not services().accounts.remove(account_id):
        return api_error(404, f"No account {account_id}", "not_found")
    return jsonify({"deleted": account_id})
