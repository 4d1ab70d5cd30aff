"""The control plane: a Flask app (dashboard pages and the management JSON API) over the same
``Services`` as the data plane. ``core.hosts.addon`` serves it on the proxy's own port."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Flask, Response, jsonify
from flask.json.provider import JSONProvider
from werkzeug.exceptions import HTTPException

from core.services import Services
from core.settings import SettingsError
from dashboard.accounts import accounts_api
from dashboard.admin import admin_api
from dashboard.gate import gate, set_session_cookie
from dashboard.keys import keys_api
from dashboard.login import login_api
from dashboard.pages import pages
from dashboard.providers import providers_api
from dashboard.proxies import proxies_api
from dashboard.security import api_error, csrf_refusal
from dashboard.sessions import LoginLimiter, SessionStore
from dashboard.settings import settings_api
from dashboard.usage import usage_api

# Everything the pages use is served from here: scripts, styles, images, no other origin.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _plain(obj: Any) -> Any:
    """What orjson cannot write itself: the read-only mappings settings hold (model.aliases…)."""
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


class OrjsonProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=_plain, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


def create_app(services: Services) -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.extensions["codex"] = services
    app.extensions["codex_sessions"] = SessionStore()
    app.extensions["codex_login_limiter"] = LoginLimiter()
    app.extensions["codex_startup_config"] = services.cfg  # settings read only at start: what they were
    for blueprint in (accounts_api, login_api, admin_api, keys_api, settings_api, usage_api, proxies_api, providers_api, gate, pages):
        app.register_blueprint(blueprint)
    app.before_request(csrf_refusal)
    app.after_request(set_session_cookie)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _json_error)
    # A saved value the settings loader refuses (nothing was written): the caller's mistake.
    app.register_error_handler(SettingsError, lambda error: api_error(400, str(error), "invalid_request"))
    app.register_error_handler(Exception, _unexpected_error)
    # werkzeug logs every request at INFO; mitmproxy's own flow log already shows them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return app


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")  # pages carry the session's CSRF token
    return response


_CODES = {400: "invalid_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          429: "too_many_requests"}


def _json_error(error: HTTPException) -> Any:
    """Every control-plane error is JSON, like the data plane's (never werkzeug's HTML page)."""
    status = error.code or 500
    code = _CODES.get(status, "server_error")
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return jsonify({"error": {"message": error.description or error.name, "type": kind, "code": code}}), status


def _unexpected_error(error: Exception) -> Any:
    logging.getLogger(__name__).exception("control plane error")
    return jsonify({"error": {"message": "internal error in the control plane", "type": "server_error", "code": "server_error"}}), 500
