"""Management API for ChatGPT accounts under ``/auth`` (README.md, "Management API", lists the shapes).

Tokens never appear in an answer, except in the full export (``GET /auth/accounts/export``),
which exists to move accounts and is therefore a secret itself.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import NotFound

from core.accounts.model import Account
from core.accounts.oauth import OAuthError
from core.accounts.quota import warnings_for
from core.accounts.service import AccountInputError
from core.codex.errors import UpstreamError
from dashboard.security import api_error, json_body, require_api_key, services

accounts_api = Blueprint("accounts", __name__, url_prefix="/auth")


def account_view(account: Account, with_quota: bool = False) -> dict[str, Any]:
    view = account.public()
    view["proxy"] = services().proxies.describe(account.id)
    if view["proxy"]["blocked"] and view["status"] == "active":
        view["status"] = "proxy_unavailable"  # it does not serve until its proxy can be used again
    quota = view.pop("quota")
    if with_quota:
        now = time.time()
        view["quota"] = quota and {
            **quota,
            "exhausted_until": account.quota.exhausted_until(now) if account.quota else None,
            "warnings": warnings_for(account.quota, services().cfg.quota.warning_thresholds, now),
        }
    return view


def id_list(body: dict[str, Any] | None) -> list[str] | None:
    """``body["ids"]`` when it is a list of ids (the batch endpoints' input), else None."""
    ids = body.get("ids") if body is not None else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return ids


@accounts_api.get("/accounts")
@require_api_key
def list_accounts() -> Any:
    """``?quota=true`` adds each account's last rate-limit snapshot; ``?quota=fresh`` asks the
    backend for it first (one ``/wham/usage`` call per account)."""
    svc = services()
    mode = request.args.get("quota", "").lower()
    errors: dict[str, str] = {}
    if mode == "fresh":
        assert svc.backend is not None
        errors = svc.run_on_loop(svc.backend.refresh_usage(svc.pool.all()), timeout=90)
    with_quota = mode in ("true", "1", "fresh")
    body: dict[str, Any] = {"accounts": [account_view(a, with_quota) for a in svc.accounts.list()]}
    if errors:
        body["quota_errors"] = errors
    return jsonify(body)


@accounts_api.post("/accounts")
@require_api_key
def add_account() -> Any:
    body = json_body()
    if body is None:
        return api_error(400, "Request body must be a JSON object", "invalid_request")
    try:
        account, created = services().accounts.add(body)
    except AccountInputError as exc:
        return api_error(400, str(exc), "invalid_account")
    return jsonify({"account": account_view(account), "created": created}), 201 if created else 200


def import_entries(body: Any) -> list[Any] | None:
    """What an import may be: the export's ``{"accounts": [...]}``, a bare list, or Codex CLI's
    ``auth.json`` (``{"tokens": {"access_token", "refresh_token", "id_token"}}``)."""
    if isinstance(body, list):
        return body
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("accounts"), list):
        return body["accounts"]
    tokens = body.get("tokens")
    if isinstance(tokens, dict):
        return [{"token": tokens.get("access_token"), "refreshToken": tokens.get("refresh_token"), "idToken": tokens.get("id_token")}]
    return None


@accounts_api.post("/accounts/import")
@require_api_key
def import_accounts() -> Any:
    entries = import_entries(request.get_json(silent=True))
    if entries is None:
        return api_error(400, "Body must be {\"accounts\": [...]}, a list of accounts or a Codex auth.json", "invalid_request")
    return jsonify(services().accounts.import_many(entries).as_dict())


@accounts_api.get("/accounts/export")
@require_api_key
def export_accounts() -> Any:
    """The import format. Full: every token (keep the file secret). ``?format=minimal``: refresh
    tokens and labels only. Either way, importing elsewhere redeems the refresh token, which then
    stops working here: an export moves accounts, it does not share them."""
    minimal = request.args.get("format") == "minimal"
    response = jsonify({"accounts": services().accounts.export(minimal=minimal)})
    response.headers["Cache-Control"] = "no-store"
    return response


@accounts_api.post("/accounts/batch-delete")
@require_api_key
def batch_delete() -> Any:
    ids = id_list(json_body())
    if ids is None:
        return api_error(400, "Body must be {\"ids\": [\"acct_...\", ...]}", "invalid_request")
    removed = services().accounts.remove(ids)
    return jsonify({"deleted": len(removed), "ids": removed, "missing": [i for i in ids if i not in removed]})


@accounts_api.post("/accounts/batch-status")
@require_api_key
def batch_status() -> Any:
    body = json_body()
    ids = id_list(body)
    if ids is None or body is None:
        return api_error(400, "Body must be {\"ids\": [...], \"status\": \"active\" | \"disabled\"}", "invalid_request")
    try:
        changed = services().accounts.set_status(ids, str(body.get("status")))
    except AccountInputError as exc:
        return api_error(400, str(exc), "invalid_request")
    return jsonify({"updated": len(changed), "ids": changed, "missing": [i for i in ids if i not in changed]})


@accounts_api.delete("/accounts/<account_id>")
@require_api_key
def delete_account(account_id: str) -> Any:
    if not services().accounts.remove([account_id]):
        raise NotFound(f"No account {account_id}")
    return jsonify({"deleted": account_id})


def _account(account_id: str) -> Account:
    account = services().pool.get(account_id)
    if account is None:
        raise NotFound(f"No account {account_id}")  # the app's handler answers a JSON 404
    return account


@accounts_api.post("/accounts/<account_id>/refresh")
@require_api_key
def refresh_account(account_id: str) -> Any:
    """Refresh the account's tokens now, then probe it (its usage snapshot)."""
    account, svc = _account(account_id), services()
    assert svc.tokens is not None and svc.backend is not None
    try:
        svc.run_on_loop(svc.tokens.refresh(account.id, reason="forced"))
    except OAuthError as exc:
        return api_error(409 if exc.permanent else 502, str(exc), exc.code)
    probe = svc.run_on_loop(svc.backend.refresh_usage([account]), timeout=60)
    return jsonify({"account": account_view(account, with_quota=True), "probe_error": probe.get(account.id)})


@accounts_api.get("/accounts/<account_id>/quota")
@require_api_key
def account_quota(account_id: str) -> Any:
    """Ask the backend (``/wham/usage``) for this account's quota now."""
    account, svc = _account(account_id), services()
    assert svc.backend is not None
    try:
        _, usage = svc.run_on_loop(svc.backend.usage(account), timeout=60)
    except UpstreamError as exc:
        return api_error(exc.status if 400 <= exc.status < 600 else 502, exc.message, exc.code)
    return jsonify({"account_id": account.id, "quota": account_view(account, with_quota=True)["quota"], "usage": usage})


@accounts_api.get("/quota/warnings")
@require_api_key
def quota_warnings() -> Any:
    svc = services()
    return jsonify({"thresholds": svc.cfg.quota.warning_thresholds, "warnings": svc.pool.warnings()})
