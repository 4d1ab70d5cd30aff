"""The dashboard's login gate.

A browser on this machine gets a session as soon as it opens a page; any other address logs in
with the dashboard password (``session.password``, else the proxy key) first. Failed attempts are
limited per client address (``session.login_attempts`` per ``session.login_window_minutes``). The
session cookie is HttpOnly and SameSite=Lax, lives ``session.ttl_minutes``, and is the only cookie
the control plane sets.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, g, redirect, render_template, request, url_for

from dashboard.i18n import page_context
from dashboard.security import (
    client_addr,
    current_session,
    is_local_browser,
    login_limiter,
    same_secret,
    services,
    session_cookie_name,
    sessions,
)
from dashboard.sessions import Session

F = TypeVar("F", bound=Callable[..., Any])

gate = Blueprint("gate", __name__, url_prefix="/dashboard")


def dashboard_password() -> str | None:
    cfg = services().cfg
    return cfg.session.password or cfg.server.proxy_api_key


def _ttl() -> float:
    return services().cfg.session.ttl_minutes * 60.0


def _start_session(local: bool) -> Session:
    session = sessions().create(_ttl(), local=local)
    g.codex_session = g.codex_new_session = session
    return session


def set_session_cookie(response: Response) -> Response:
    """``after_request``: hand a session made during this request to the browser."""
    session: Session | None = g.pop("codex_new_session", None)
    if session is not None:
        response.set_cookie(session_cookie_name(), session.id, max_age=int(_ttl()), path="/", httponly=True,
                            samesite="Lax", secure=request.is_secure)  # fmt: skip
    return response


def dashboard_page(view: F) -> F:
    """A page: opens for a session; this machine gets one on the spot, others go to the login form."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if current_session() is None:
            if not is_local_browser():
                return redirect(url_for("gate.login_form", next=request.full_path.rstrip("?")))
            _start_session(local=True)
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def _next_path() -> str:
    """Where to go after logging in: a path on this server only (never ``//elsewhere``)."""
    target = request.values.get("next") or "/"
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def _login_page(error: str | None = None, status: int = 200, retry_after: float = 0.0) -> Any:
    context = page_context()
    body = render_template("login.html", **context, error=error, next_path=_next_path(),
                           remote_closed=dashboard_password() is None, retry_minutes=math.ceil(retry_after / 60))  # fmt: skip
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after else {}
    return body, status, headers


@gate.get("/login")
def login_form() -> Any:
    if current_session() is not None or is_local_browser():
        return redirect(_next_path())
    return _login_page()


@gate.post("/login")
def login() -> Any:
    cfg = services().cfg
    expected = dashboard_password()
    if expected is None:
        return _login_page("remote_closed", 403)
    address = client_addr()
    attempts = cfg.session.login_attempts
    window = cfg.session.login_window_minutes * 60
    limiter = login_limiter()
    if wait := limiter.wait(address, attempts, window):
        return _login_page("locked", 429, wait)
    if not same_secret(request.form.get("password"), expected):
        limiter.failed(address, window)
        wait = limiter.wait(address, attempts, window)
        return _login_page("locked" if wait else "wrong_password", 429 if wait else 401, wait)
    limiter.succeeded(address)
    _start_session(local=False)
    return redirect(_next_path(), code=303)


@gate.post("/logout")
def logout() -> Any:
    """The CSRF guard already checked the form's token against the session."""
    session = current_session()
    if session is not None:
        sessions().drop(session.id)
    response = redirect(url_for("gate.login_form"), code=303)
    response.delete_cookie(session_cookie_name(), path="/", httponly=True, samesite="Lax")
    return response
