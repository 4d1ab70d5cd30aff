"""Who is calling the control plane, and whether they may."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, jsonify, request

from core.flows import CLIENT_ADDR_HEADER, is_loopback_address
from core.services import Services

F = TypeVar("F", bound=Callable[..., Any])


def services() -> Services:
    return current_app.extensions["codex"]


def client_addr() -> str:
    """The real client: the gateway forwards us its address (and overwrites any the client sent)."""
    return request.headers.get(CLIENT_ADDR_HEADER) or request.remote_addr or ""


def is_loopback() -> bool:
    return is_loopback_address(client_addr())


def presented_key() -> str | None:
    if key := request.headers.get("x-api-key"):
        return key.strip()
    auth = request.headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def json_body() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def api_error(status: int, message: str, code: str) -> Any:
    return jsonify({"error": {"message": message, "type": "invalid_request_error", "code": code}}), status


def has_valid_key() -> bool:
    expected = services().cfg.proxy_api_key
    given = presented_key()
    return bool(expected and given and hmac.compare_digest(given.encode(), expected.encode()))


def require_api_key(view: F) -> F:
    """Management calls carry the proxy key; with no key configured only this machine may call."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if services().cfg.proxy_api_key:
            if not has_valid_key():
                return api_error(401, "Invalid or missing proxy API key", "invalid_api_key")
        elif not is_loopback():
            return api_error(403, "Set server.proxy_api_key to manage the proxy from another machine", "forbidden")
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def require_key_or_loopback(view: F) -> F:
    """The proxy key, or any caller on this machine. For read-only views a local client asks for
    with credentials of its own (Codex CLI sends its ChatGPT token to the usage endpoint)."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not (is_loopback() or has_valid_key()):
            return api_error(401, "Invalid or missing proxy API key", "invalid_api_key")
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]
