"""The control plane: a Flask app (dashboard pages and the management JSON API) over the same
``Services`` as the data plane. ``core.addon`` serves it on the proxy's own port."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask
from flask.json.provider import JSONProvider

from core.services import Services
from dashboard.accounts import accounts_api
from dashboard.pages import pages


class OrjsonProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


def create_app(services: Services) -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.extensions["codex"] = services
    app.register_blueprint(accounts_api)
    app.register_blueprint(pages)
    # werkzeug logs every request at INFO; mitmproxy's own flow log already shows them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return app
