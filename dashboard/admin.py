"""Management API under ``/admin``: usage statistics and the request log (the store's request_log).
Settings are in dashboard/settings.py."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import NotFound

from core.store import log_queries
from core.store.request_log import BUCKETS
from dashboard.security import api_error, require_api_key, services

admin_api = Blueprint("admin", __name__, url_prefix="/admin")


class BadQuery(ValueError):
    """A query parameter is unusable; the message says which and why."""


def _since() -> float | None:
    """``?hours=N`` (default 24) as a start time; ``hours=all`` → None."""
    raw = request.args.get("hours", "24")
    if raw == "all":
        return None
    try:
        hours = float(raw)
    except ValueError:
        hours = -1
    if hours <= 0:
        raise BadQuery("hours must be a positive number or 'all'")
    return time.time() - hours * 3600


def _granularity() -> str:
    granularity = request.args.get("granularity", "hourly")
    if granularity not in BUCKETS:
        raise BadQuery(f"granularity must be one of: {', '.join(BUCKETS)}")
    return granularity


@admin_api.errorhandler(BadQuery)
def _bad_query(error: BadQuery) -> Any:
    return api_error(400, str(error), "invalid_request")


def _key_id() -> str | None:
    """``?key_id=<id>``: only requests made with that client key (``none``: with the proxy key or none)."""
    return request.args.get("key_id") or None


def _account_names() -> dict[str, str | None]:
    """How the dashboard names an account: its label, else its email."""
    return {a.id: a.label or a.email for a in services().pool.all()}


def _key_names() -> dict[str, str]:
    return {k.id: k.label for k in services().key_guard.all()}


@admin_api.get("/usage-stats/summary")
@require_api_key
def usage_summary() -> Any:
    """Totals (requests, failures, tokens, estimated cost) overall, per account, per model and per
    client key (``by_key``; ``key`` null: the proxy key or none)."""
    summary = services().request_log.summary(_since(), _key_id())
    accounts = {a.id: a for a in services().pool.all()}
    for row in summary["by_account"]:
        account = accounts.get(row["key"] or "")
        row["email"], row["label"] = (account.email, account.label) if account else (None, None)
    keys = _key_names()
    for row in summary["by_key"]:
        row["label"] = keys.get(row["key"] or "")
    return jsonify(summary)


@admin_api.get("/usage-stats/history")
@require_api_key
def usage_history() -> Any:
    granularity = _granularity()
    points = services().request_log.history(_since() or 0.0, granularity, key_id=_key_id())
    return jsonify({"granularity": granularity, "hours": request.args.get("hours", "24"), "data_points": points})


@admin_api.get("/usage-stats/series")
@require_api_key
def usage_series() -> Any:
    """``?group=account|model|key``: the history's totals per bucket and per account (model, client key)."""
    group = request.args.get("group", "account")
    if group not in log_queries.GROUPS:
        raise BadQuery(f"group must be one of: {', '.join(log_queries.GROUPS)}")
    granularity = _granularity()
    points = log_queries.series(services().db.conn(), _since() or 0.0, granularity, group, key_id=_key_id())
    body: dict[str, Any] = {"granularity": granularity, "group": group, "data_points": points}
    if group == "account":
        body["names"] = _account_names()
    elif group == "key":
        body["names"] = _key_names()
    return jsonify(body)


@admin_api.get("/usage-stats/latency")
@require_api_key
def usage_latency() -> Any:
    """Percentiles (p50/p90/p99) of the time to first byte and of the output speed (tokens/s
    after the first byte, streamed answers), over the range and per bucket."""
    granularity = _granularity()
    spread = log_queries.latency(services().db.conn(), _since() or 0.0, granularity, _key_id())
    return jsonify({"granularity": granularity, **spread})


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.args.get(name, str(default)))
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise BadQuery(f"{name} must be an integer from {low} to {high}")
    return value


@admin_api.get("/logs")
@require_api_key
def logs() -> Any:
    """The request log, newest first: ``?limit`` (1-200), ``?offset``, ``?since`` (unix seconds),
    filters on ``account_id``, ``provider``, ``model``, ``protocol``, ``key_id``, ``status``, ``outcome=ok|error`` and
    ``q`` (text in the model, path, error, request id...). Rows hold no bodies and no secrets.
    A request no account could serve has no ``account_id``."""
    limit = _int_arg("limit", 100, 1, 200)
    offset = _int_arg("offset", 0, 0, 10**9)
    filters: dict[str, Any] = {k: request.args[k] for k in ("account_id", "provider", "model", "protocol", "key_id") if request.args.get(k)}
    if "status" in request.args and request.args["status"].isdigit():
        filters["status"] = int(request.args["status"])
    outcome = request.args.get("outcome") or None
    if outcome is not None and outcome not in log_queries.OUTCOMES:
        raise BadQuery(f"outcome must be one of: {', '.join(log_queries.OUTCOMES)}")
    rows, total = log_queries.search(services().db.conn(), limit, offset, filters, request.args.get("since", type=float),
                                     (request.args.get("q") or "").strip() or None, outcome)  # fmt: skip
    return jsonify({"logs": rows, "total": total, "limit": limit, "offset": offset})


@admin_api.get("/logs/<int:entry_id>")
@require_api_key
def log_entry(entry_id: int) -> Any:
    """One request, with its bodies when they were captured (``logs.capture_bodies``)."""
    svc = services()
    row = log_queries.entry(svc.db.conn(), entry_id)
    if row is None:
        raise NotFound(f"No log entry {entry_id}")
    bodies = svc.bodies.get(row["request_id"]) if row["request_id"] else None
    row["account_name"] = _account_names().get(row["account_id"] or "")
    row["key_label"] = _key_names().get(row["key_id"] or "")
    return jsonify({"log": row, "capture_bodies": svc.cfg.logs.capture_bodies,
                    "bodies": bodies and {k: bodies[k] for k in ("request", "response", "truncated")}})  # fmt: skip


@admin_api.get("/logs/errors")
@require_api_key
def log_errors() -> Any:
    """Failed requests grouped by kind (status and message, numbers aside), most frequent first."""
    return jsonify({"groups": log_queries.error_groups(services().db.conn(), _since())})
