"""Dashboard pages. This machine opens them directly; other addresses need a login (later)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from dashboard.security import is_loopback, services

pages = Blueprint("pages", __name__)


def mask(key: str | None) -> str:
    if not key:
        return "(none)"
    return key[:6] + "•" * 8 + key[-2:] if len(key) > 10 else "•" * len(key)


@pages.get("/")
def index() -> Any:
    if not is_loopback():
        return render_template("locked.html"), 403
    svc = services()
    base = request.host_url.rstrip("/")
    return render_template(
        "index.html",
        accounts=[a.public() for a in svc.accounts.list()],
        masked_key=mask(svc.cfg.proxy_api_key),
        base_url=base + "/v1",
        local_yaml=str(svc.config.local_path),
    )
