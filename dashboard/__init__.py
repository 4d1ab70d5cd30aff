"""The control plane: a Flask app (dashboard pages and the management JSON API) over the same
``Services`` as the data plane. ``core.addon`` serves it on the proxy's own port."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, jsonify
from flask.json.provider import JSONProvider
from werkzeug.exceptions import HTTPException

from core.services import Services
from dashboard.accounts import accounts_api
from dashboard.admin import admin_api
from dashboard.login import login_api
from dashboard.pages import pages
from dashboard.usage import usage_api


class OrjsonProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


def create_app(services: Services) -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.extensions["codex"] = services
    for blueprint in (accounts_api, login_api, admin_api, usage_api, pages):
        app.register_blueprint(blueprint)
    app.register_error_handler(HTTPException, _json_error)
    app.register_error_handler(Exception, _unexpected_error)
    # werkzeug logs every request at INFO; mitmproxy's own flow log already shows them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return app


_CODES = {400: "invalid_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def _json_error(error: HTTPException) -> Any:
    """Every control-plane error is JSON, like the data plane's (never werkzeug's HTML page)."""
    status = error.code or 500
    code = _CODES.get(status, "server_error")
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return jsonify({"error": {"message": error.description or error.name, "type": kind, "code": code}}), status


def _unexpected_error(error: Exception) -> Any:
    logging.getLogger(__name__).exception("control plane error")
    return jsonify({"error": {"message": "internal error in the control plane", "type": "server_error", "code": "server_error"}}), 500
