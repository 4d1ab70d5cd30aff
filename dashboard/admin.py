"""Management API under ``/admin``: rotation and quota settings (saved to local.yaml, applied at
once), usage statistics and the request log (from SQLite's request_log)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify, request

from core.accounts.strategies import STRATEGIES
from core.store.request_log import BUCKETS, LOG_COLUMNS
from dashboard.security import api_error, json_body, require_api_key, services

admin_api = Blueprint("admin", __name__, url_prefix="/admin")

Check = Callable[[Any], str | None]  # a setting's value → what is wrong with it, or None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _one_of(choices: tuple[str, ...]) -> Check:
    return lambda value: None if value in choices else f"must be one of: {', '.join(choices)}"


def _minutes(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "must be an integer >= 0"


def _thresholds(value: Any) -> str | None:
    """A list for both windows, or the seed's ``{"primary": [...], "secondary": [...]}``."""
    lists = list(value.values()) if isinstance(value, dict) and set(value) <= {"primary", "secondary"} else [value]
    ok = all(
        isinstance(items, list) and all(isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 100 for t in items)
        for items in lists
    )
    return None if ok else "integers 1-100, as a list or {\"primary\": [...], \"secondary\": [...]}"


def _settings(path: str, section: str, checks: dict[str, Check], extra: Callable[[], dict[str, Any]] | None = None) -> None:
    """``GET``/``POST /admin/<path>``: the ``section.<key>`` settings of ``checks``; a POST saves the
    keys it gives to local.yaml (ConfigStore.update_local), which applies them at once."""

    def view() -> dict[str, Any]:
        cfg = services().cfg
        return {**{key: cfg.get(f"{section}.{key}") for key in checks}, **(extra() if extra else {})}

    def show() -> Any:
        return jsonify(view())

    def save() -> Any:
        body = json_body() or {}
        patch = {key: body[key] for key in checks if key in body}
        if not patch:
            return api_error(400, f"Nothing to change: give any of {', '.join(checks)}", "invalid_request")
        for key, value in patch.items():
            if problem := checks[key](value):
                return api_error(400, f"{key} {problem}", "invalid_request")
        services().config.update_local({section: patch})
        return jsonify({"success": True, **view()})

    name = path.replace("-", "_")
    admin_api.add_url_rule(f"/{path}", name, require_api_key(show), methods=["GET"])
    admin_api.add_url_rule(f"/{path}", f"set_{name}", require_api_key(save), methods=["POST"])


_settings("rotation-settings", "auth",
          {"rotation_strategy": _one_of(STRATEGIES), "session_affinity": _boolean, "plan_routing": _boolean},
          lambda: {"strategies": list(STRATEGIES), "plan_models": services().pool.plans.snapshot()})  # fmt: skip
_settings("quota-settings", "quota",
          {"refresh_interval_minutes": _minutes, "warning_thresholds": _thresholds, "skip_exhausted": _boolean})  # fmt: skip


def _since() -> float | None:
    """``?hours=N`` (default 24) as a start time; ``hours=all`` → None. Raises ValueError."""
    raw = request.args.get("hours", "24")
    if raw == "all":
        return None
    hours = float(raw)
    if hours <= 0:
        raise ValueError(raw)
    return time.time() - hours * 3600


def _bad_hours() -> Any:
    return api_error(400, "hours must be a positive number or 'all'", "invalid_request")


@admin_api.get("/usage-stats/summary")
@require_api_key
def usage_summary() -> Any:
    try:
        since = _since()
    except ValueError:
        return _bad_hours()
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
    try:
        since = _since()
    except ValueError:
        return _bad_hours()
    points = services().request_log.history(since or 0.0, granularity)
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
