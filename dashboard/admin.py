"""Management API under ``/admin``: rotation and quota settings (saved to local.yaml, applied at
once), usage statistics and the request log (from SQLite's request_log)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify, request

from core.accounts.strategies import STRATEGIES
from core.store.request_log import BUCKETS, LOG_COLUMNS
from dashboard.security import api_error, json_body, require_api_key, services

admin_api = Blueprint("admin", __name__, url_prefix="/admin")


def _rotation() -> dict[str, Any]:
    cfg = services().cfg
    return {
        "rotation_strategy": cfg.get("auth.rotation_strategy"),
        "session_affinity": bool(cfg.get("auth.session_affinity", True)),
        "plan_routing": bool(cfg.get("auth.plan_routing", True)),
        "strategies": list(STRATEGIES),
        "plan_models": services().pool.plans.snapshot(),  # what each plan's model list said
    }


@admin_api.get("/rotation-settings")
@require_api_key
def rotation_settings() -> Any:
    return jsonify(_rotation())


@admin_api.post("/rotation-settings")
@require_api_key
def set_rotation_settings() -> Any:
    body = json_body() or {}
    patch: dict[str, Any] = {}
    if "rotation_strategy" in body:
        if body["rotation_strategy"] not in STRATEGIES:
            return api_error(400, f"rotation_strategy must be one of: {', '.join(STRATEGIES)}", "invalid_request")
        patch["rotation_strategy"] = body["rotation_strategy"]
    for flag in ("session_affinity", "plan_routing"):
        if flag in body:
            if not isinstance(body[flag], bool):
                return api_error(400, f"{flag} must be true or false", "invalid_request")
            patch[flag] = body[flag]
    if not patch:
        return api_error(400, "Nothing to change: give rotation_strategy, session_affinity or plan_routing", "invalid_request")
    services().config.update_local({"auth": patch})
    return jsonify({"success": True, **_rotation()})


def _quota() -> dict[str, Any]:
    cfg = services().cfg
    return {key: cfg.get(f"quota.{key}") for key in ("refresh_interval_minutes", "warning_thresholds", "skip_exhausted")}


def _valid_thresholds(value: Any) -> bool:
    lists = list(value.values()) if isinstance(value, dict) and set(value) <= {"primary", "secondary"} else [value]
    return all(
        isinstance(items, list) and all(isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 100 for t in items)
        for items in lists
    )


@admin_api.get("/quota-settings")
@require_api_key
def quota_settings() -> Any:
    return jsonify(_quota())


@admin_api.post("/quota-settings")
@require_api_key
def set_quota_settings() -> Any:
    body = json_body() or {}
    patch: dict[str, Any] = {}
    if "refresh_interval_minutes" in body:
        value = body["refresh_interval_minutes"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return api_error(400, "refresh_interval_minutes must be an integer >= 0", "invalid_request")
        patch["refresh_interval_minutes"] = value
    if "warning_thresholds" in body:
        if not _valid_thresholds(body["warning_thresholds"]):
            return api_error(400, "warning_thresholds: integers 1-100, as a list or {\"primary\": [...], \"secondary\": [...]}", "invalid_request")
        patch["warning_thresholds"] = body["warning_thresholds"]
    if "skip_exhausted" in body:
        if not isinstance(body["skip_exhausted"], bool):
            return api_error(400, "skip_exhausted must be true or false", "invalid_request")
        patch["skip_exhausted"] = body["skip_exhausted"]
    if not patch:
        return api_error(400, "Nothing to change", "invalid_request")
    services().config.update_local({"quota": patch})
    return jsonify({"success": True, **_quota()})


def _hours() -> float | None | Any:
    """``?hours=N`` (default 24) as a start time; ``hours=all`` → None."""
    raw = request.args.get("hours", "24")
    if raw == "all":
        return None
    try:
        hours = float(raw)
    except ValueError:
        hours = 0
    if hours <= 0:
        return api_error(400, "hours must be a positive number or 'all'", "invalid_request")
    return time.time() - hours * 3600


@admin_api.get("/usage-stats/summary")
@require_api_key
def usage_summary() -> Any:
    since = _hours()
    if since is not None and not isinstance(since, float):
        return since
    summary = services().request_log.summary(since)
    labels = {a.id: a.email or a.label for a in services().pool.all()}
    for row in summary["by_account"]:
        row["email"] = labels.get(row["key"])
    return jsonify(summary)


@admin_api.get("/usage-stats/history")
@require_api_key
def usage_history() -> Any:
    granularity = request.args.get("granularity", "hourly")
    if granularity not in BUCKETS:
        return api_error(400, f"granularity must be one of: {', '.join(BUCKETS)}", "invalid_request")
    since = _hours()
    if since is not None and not isinstance(since, float):
        return since
    points = services().request_log.history(0.0 if since is None else since, granularity)
    return jsonify({"granularity": granularity, "hours": request.args.get("hours", "24"), "data_points": points})


@admin_api.get("/logs")
@require_api_key
def logs() -> Any:
    """The request log, newest first: ``?limit`` (1-200), ``?offset``, ``?since`` (unix seconds) and
    filters on ``account_id``, ``model``, ``protocol``, ``status``. Rows hold no bodies and no secrets.
    A request no account could serve has no ``account_id``."""
    try:
        limit = int(request.args.get("limit", "100"))
        offset = int(request.args.get("offset", "0"))
    except ValueError:
        return api_error(400, "limit and offset must be integers", "invalid_request")
    if not 1 <= limit <= 200 or offset < 0:
        return api_error(400, "limit must be 1-200 and offset >= 0", "invalid_request")
    filters: dict[str, Any] = {k: request.args[k] for k in ("account_id", "model", "protocol") if k in request.args}
    if "status" in request.args and request.args["status"].isdigit():
        filters["status"] = int(request.args["status"])
    since = request.args.get("since", type=float)
    rows, total = services().request_log.entries(limit, offset, filters, since)
    return jsonify({"logs": [{k: row.get(k) for k in LOG_COLUMNS} for row in rows], "total": total, "limit": limit, "offset": offset})
