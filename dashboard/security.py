"""Who is calling the control plane, and whether they may.

Three ways in: the proxy key (``Authorization: Bearer`` / ``x-api-key``, for scripts), a dashboard
session cookie (browsers; changes need the session's CSRF token as well), or — when no key is
configured at all — being on this machine. "This machine" means a loopback peer that also names
the proxy by an IP literal or ``localhost``: a page on some other site whose name was rebound to
127.0.0.1 (DNS rebinding) reaches us from loopback too, but with its own name in ``Host``.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import current_app, g, jsonify, request

from core.gateway.clients import is_loopback_address
from core.services import Services
from dashboard.sessions import LoginLimiter, Session, SessionStore

F = TypeVar("F", bound=Callable[..., Any])

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def services() -> Services:
    return current_app.extensions["codex"]


def sessions() -> SessionStore:
    return current_app.extensions["codex_sessions"]


def login_limiter() -> LoginLimiter:
    return current_app.extensions["codex_login_limiter"]


def client_addr() -> str:
    """The real client: the gateway forwards us its address (and overwrites any the client sent)."""
    return request.remote_addr or ""


def is_loopback() -> bool:
    return is_loopback_address(client_addr())


def _host() -> tuple[str, int]:
    """The name and port the client used (from ``Host``)."""
    parts = urlsplit("//" + request.host)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port or (443 if request.is_secure else 80)


def host_is_local() -> bool:
    """The ``Host`` the client used is ``localhost`` or an IP literal (no name to rebind)."""
    host = _host()[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_local_browser() -> bool:
    return is_loopback() and host_is_local()


def session_cookie_name() -> str:
    """One cookie per port: browsers share cookies across ports of a host, proxies do not share sessions."""
    return f"codex_proxy_session_{_host()[1]}"


def current_session() -> Session | None:
    if "codex_session" not in g:
        prune_every = services().cfg.session.cleanup_interval_minutes * 60
        g.codex_session = sessions().get(request.cookies.get(session_cookie_name()), prune_every=prune_every)
    return g.codex_session


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


def same_secret(given: str | None, expected: str | None) -> bool:
    return bool(given and expected and hmac.compare_digest(given.encode(), expected.encode()))


def has_valid_key() -> bool:
    return same_secret(presented_key(), services().cfg.server.proxy_api_key)


def require_api_key(view: F) -> F:
    """Management calls carry the proxy key or come from a dashboard session; with no key
    configured, this machine may call without either."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not (has_valid_key() or current_session() is not None):
            if services().cfg.server.proxy_api_key:
                return api_error(401, "Invalid or missing proxy API key", "invalid_api_key")
            if not is_local_browser():
                return api_error(403, "Set server.proxy_api_key to manage the proxy from another machine", "forbidden")
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def require_key_or_loopback(view: F) -> F:
    """The proxy key, a dashboard session, or any caller on this machine. For read-only views a
    local client asks for with credentials of its own (Codex CLI sends its ChatGPT token to the
    usage endpoint)."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not (is_local_browser() or has_valid_key() or current_session() is not None):
            return api_error(401, "Invalid or missing proxy API key", "invalid_api_key")
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def _cross_site() -> bool:
    """A browser says the request comes from another origin (other ports of this host included)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and origin.rstrip("/") != request.host_url.rstrip("/")


def csrf_refusal() -> Any | None:
    """For every change (``before_request``): a request riding on the session cookie must carry
    that session's CSRF token; one without a key or a session must not come from another site.
    The proxy key needs nothing more: no other site can make a browser send it."""
    if request.method not in UNSAFE_METHODS or has_valid_key():
        return None
    session = current_session()
    if session is not None:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.mimetype == "application/x-www-form-urlencoded":
            sent = request.form.get(CSRF_FIELD)
        if same_secret(sent, session.csrf):
            return None
        return api_error(403, "Missing or wrong CSRF token: reload the dashboard", "csrf_failed")
    if _cross_site():
        return api_error(403, "Cross-site request refused", "csrf_failed")
    return None
