"""Logging in a ChatGPT account through the management API: browser PKCE and device code."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, redirect, request

from core.accounts.login import LoginError
from core.accounts.oauth import OAuthError
from dashboard.security import api_error, json_body, require_api_key, require_key_or_loopback, services

login_api = Blueprint("login", __name__, url_prefix="/auth")


@login_api.get("/login")
@require_key_or_loopback
def start_login() -> Any:
    """Start a browser login. JSON with the authorize URL (and whether the callback listener runs);
    ``?redirect=1`` answers a redirect to it instead, for the dashboard's link. From this machine
    no key is needed: the login only adds the account the user logs in with."""
    started = services().login.start_browser()
    if request.args.get("redirect") in ("1", "true"):
        return redirect(started["auth_url"], code=302)
    return jsonify(started)


@login_api.post("/login/callback")
@require_api_key
def finish_login() -> Any:
    """The manual path: ``{"url": "<the URL the browser was redirected to>"}`` (or ``code`` + ``state``)."""
    body = json_body() or {}
    try:
        if isinstance(body.get("url"), str):
            result = services().login.complete_url(body["url"])
        elif body.get("code") and body.get("state"):
            result = services().login.complete({"code": str(body["code"]), "state": str(body["state"])})
        else:
            return api_error(400, "Give {\"url\": <redirected URL>} or {\"code\", \"state\"}", "invalid_request")
    except LoginError as exc:
        return api_error(400, str(exc), "login_failed")
    return jsonify(result), 201 if result["created"] else 200


@login_api.get("/callback")
def callback() -> Any:
    """The redirect itself, when it reaches the proxy's own port (the state authenticates it)."""
    status, page = services().login.callback_page(request.args)
    return page, status, {"Content-Type": "text/html; charset=utf-8"}


@login_api.get("/login/status")
@require_api_key
def login_status() -> Any:
    status = services().login.status(request.args.get("state", ""))
    return jsonify(status) if status else api_error(404, "Unknown login", "not_found")


@login_api.post("/login/device")
@require_api_key
def start_device_login() -> Any:
    """The device-code flow: show ``user_code`` to the user, who enters it at ``verification_url``;
    poll ``GET /auth/login/device/<login_id>`` until ``completed``."""
    try:
        return jsonify(services().login.start_device())
    except (OAuthError, LoginError) as exc:
        return api_error(502, f"Could not start a device login: {exc}", "login_failed")


@login_api.get("/login/device/<login_id>")
@require_api_key
def device_login_status(login_id: str) -> Any:
    status = services().login.status(login_id)
    return jsonify(status) if status else api_error(404, "Unknown login", "not_found")
