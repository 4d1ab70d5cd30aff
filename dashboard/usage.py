"""The pooled usage view for Codex CLI / Desktop.

The official client reads its account's limits from ``GET {chatgpt_base_url}/wham/usage`` (or
``/api/codex/usage`` when the base URL has no ``/backend-api``) and blocks the composer when that
account is used up — even when a proxy would serve the turn from another account. Pointing its
``chatgpt_base_url`` at the proxy makes it read this instead: the backend's body shape, reporting
the pool's remaining quota (core.accounts.quota.pooled). Snapshots older than
``quota.refresh_interval_minutes`` are fetched again first.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify

from core.accounts import quota
from core.accounts.model import WAITING
from dashboard.security import require_key_or_loopback, services

usage_api = Blueprint("usage", __name__)


@usage_api.get("/backend-api/wham/usage")
@usage_api.get("/backend-api/codex/usage")
@usage_api.get("/api/codex/usage")
@require_key_or_loopback
def pooled_usage() -> Any:
    svc = services()
    max_age = svc.cfg.quota.refresh_interval_minutes * 60.0
    if max_age > 0 and svc.backend is not None:
        members = [a for a in svc.pool.all() if a.status == "active" or a.status in WAITING]
        svc.run_on_loop(svc.backend.refresh_usage(members, max_age), timeout=60)
    return jsonify(quota.usage_body(svc.pooled_quota(), time.time()))
