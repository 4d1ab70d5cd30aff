"""The data plane's route table: which client request becomes which protocol translation.

``DataPlane.dispatch`` runs synchronously in the host's request hook: it authenticates, parses
and translates (pure CPU work) and returns either an immediate ``Reply``, a ``Job`` for the
streaming bridge, or ``ToControlPlane`` for the Flask dashboard/management app.
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from core.protocols import openai_chat, responses
from core.protocols.base import (
    BadRequest,
    ClientError,
    ClientRequest,
    NotFound,
    Prepared,
    Reply,
    Unauthorized,
    json_reply,
    random_id,
)
from core.services import Services

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
CONTROL_PLANE_PREFIXES = ("/auth/", "/admin/", "/dashboard", "/static/", "/api/dashboard")
CONTROL_PLANE_EXACT = frozenset({"/", "/auth", "/admin", "/favicon.ico",
                                 # the pooled usage view, where Codex CLI looks for its limits
                                 "/backend-api/wham/usage", "/backend-api/codex/usage", "/api/codex/usage"})


@dataclass(slots=True)
class Job:
    """A translated request waiting for the bridge to run it upstream."""

    protocol: ModuleType  # the protocol module that renders the answer
    prepared: Prepared
    path: str
    request_id: str = field(default_factory=lambda: random_id("req_", 8))
    compact: bool = False
    received_at: float = field(default_factory=time.time)
    annotate: Callable[[dict[str, Any]], None] | None = None  # host hook: show the outcome on the flow


class ToControlPlane:
    """Marker: hand the request to the Flask app unchanged."""


TO_CONTROL_PLANE = ToControlPlane()
Outcome = Reply | Job | ToControlPlane
Handler = Callable[[ClientRequest, "re.Match[str]"], Outcome]


def extract_api_key(request: ClientRequest) -> str | None:
    """Every protocol accepts every key form (seed order): ?key, x-goog-api-key, x-api-key, Bearer."""
    if key := request.query.get("key"):
        return key
    for header in ("x-goog-api-key", "x-api-key"):
        if value := request.headers.get(header):
            return value
    auth = request.headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return auth.strip() or None


class DataPlane:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"^/health$"), self._health),
            ("GET", re.compile(r"^(?:/v1)?/models$"), self._models),
            ("GET", re.compile(r"^(?:/v1)?/models/catalog$"), self._catalog),
            ("GET", re.compile(r"^(?:/v1)?/models/(?P<id>[^/]+)/info$"), self._model_info),
            ("GET", re.compile(r"^(?:/v1)?/models/(?P<id>[^/]+)$"), self._model),
            ("POST", re.compile(r"^(?:/v1)?/chat/completions$"), self._protocol(openai_chat)),
            ("POST", re.compile(r"^(?:/v1)?/responses/compact$"), self._protocol(responses, compact=True)),
            ("POST", re.compile(r"^(?:/v1)?/responses$"), self._protocol(responses)),
        ]

    def dispatch(self, request: ClientRequest) -> Outcome:
        path = request.path
        for method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            if request.method != method and not (method == "GET" and request.method == "HEAD"):
                return openai_chat.render_error(_method_not_allowed(request))
            return handler(request, match)
        if path in CONTROL_PLANE_EXACT or path.startswith(CONTROL_PLANE_PREFIXES):
            return TO_CONTROL_PLANE
        return openai_chat.render_error(NotFound(f"Unknown path: {request.method} {path}", code="not_found"))

    # --- helpers -------------------------------------------------------------------------------

    def authorize(self, request: ClientRequest) -> None:
        expected = self.services.cfg.proxy_api_key
        if not expected:
            return
        given = extract_api_key(request)
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("Invalid proxy API key" if given else "Missing proxy API key", code="invalid_api_key")

    def _protocol(self, protocol: ModuleType, *, compact: bool = False) -> Handler:
        parse = functools.partial(protocol.parse_request, compact=True) if compact else protocol.parse_request

        def handle(request: ClientRequest, _: re.Match[str]) -> Outcome:
            try:
                self.authorize(request)
                prepared = parse(request, self.services.catalog, self.services.cfg)
            except ClientError as error:
                return protocol.render_error(error)
            except Exception as exc:  # a translator bug on odd input is still the client's 400, never a 500
                logger.warning("could not translate %s %s", request.method, request.path, exc_info=True)
                return protocol.render_error(BadRequest(f"Invalid request: {type(exc).__name__}: {exc}", code="invalid_request"))
            return Job(protocol, prepared, request.path, compact=compact)

        return handle

    # --- plain JSON endpoints --------------------------------------------------------------------

    def _health(self, request: ClientRequest, _: re.Match[str]) -> Reply:
        accounts = self.services.pool.all()
        return json_reply(200, {
            "status": "ok",
            "version": VERSION,
            "accounts": {"total": len(accounts), "active": sum(a.status == "active" for a in accounts)},
        })

    def _models(self, request: ClientRequest, _: re.Match[str]) -> Reply:
        catalog = self.services.catalog
        return json_reply(200, {"object": "list", "data": [catalog.openai_entry(m) for m in catalog.list()]})

    def _catalog(self, request: ClientRequest, _: re.Match[str]) -> Reply:
        catalog = self.services.catalog
        return json_reply(200, [catalog.catalog_entry(m) for m in catalog.list()])

    def _model(self, request: ClientRequest, match: re.Match[str]) -> Reply:
        info = self.services.catalog.get(match["id"])
        if info is None:
            return openai_chat.render_error(NotFound(f"Model '{match['id']}' not found", code="model_not_found", param="model"))
        return json_reply(200, self.services.catalog.openai_entry(info))

    def _model_info(self, request: ClientRequest, match: re.Match[str]) -> Reply:
        info = self.services.catalog.get(match["id"])
        if info is None:
            return json_reply(404, {"error": f"Model '{match['id']}' not found"})
        return json_reply(200, self.services.catalog.catalog_entry(info))


def _method_not_allowed(request: ClientRequest) -> ClientError:
    error = ClientError(f"Method {request.method} not allowed for {request.path}", code="method_not_allowed")
    error.status = 405
    return error
