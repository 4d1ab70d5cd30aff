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
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from core.access.keys import ClientKey, is_client_key
from core.accounts.quota import usage_body
from core.gateway import provider_routes
from core.gateway.clients import extract_api_key, is_loopback_address
from core.gateway.jobs import Job, translate
from core.protocols import anthropic, completions, gemini, openai_chat, responses
from core.protocols.base import BadRequest, ClientError, ClientRequest, NotFound, Reply, Unauthorized, json_reply
from core.services import Services

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
CONTROL_PLANE_PREFIXES = ("/auth/", "/admin/", "/dashboard", "/static/", "/api/dashboard")
CONTROL_PLANE_EXACT = frozenset({"/", "/auth", "/admin", "/favicon.ico",
                                 # the pooled usage view, where Codex CLI looks for its limits
                                 "/backend-api/wham/usage", "/backend-api/codex/usage", "/api/codex/usage"})


class ToControlPlane:
    """Marker: hand the request to the Flask app unchanged."""


@dataclass(slots=True)
class SocketJob:
    """An accepted WebSocket handshake on the Responses path: the host answers 101 and serves
    turns over it (core/gateway/responses_ws.py), each prepared by ``DataPlane.socket_turn``."""

    request: ClientRequest  # the handshake: its headers stand for every turn's
    client_key: ClientKey | None = None  # whose limits apply to every turn (None: the proxy key, or none needed)


TO_CONTROL_PLANE = ToControlPlane()
Outcome = Reply | Job | ToControlPlane | SocketJob
Handler = Callable[[ClientRequest, "re.Match[str]"], Outcome]


def is_gemini_client(request: ClientRequest) -> bool:
    """Google's SDKs (google-genai 1.x+ defaults to ``/v1/models``, which OpenAI clients use too)
    always send ``x-goog-api-client``; plain Gemini REST callers authenticate with a Google-style key."""
    return bool(request.headers.get("x-goog-api-client") or request.headers.get("x-goog-api-key") or request.query.get("key"))


class DataPlane:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._gemini_generate = self._protocol(gemini)
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            # The turns first: tried in order, and these carry nearly all the traffic.
            ("POST", re.compile(r"^(?:/v1)?/chat/completions$"), self._protocol(openai_chat)),
            ("POST", re.compile(r"^(?:/v1)?/completions$"), self._protocol(completions)),
            ("POST", re.compile(r"^(?:/v1)?/responses/compact$"), self._protocol(responses, compact=True)),
            ("POST", re.compile(r"^(?:/v1)?/responses$"), self._protocol(responses)),
            ("GET", re.compile(r"^(?:/v1)?/responses$"), self._responses_socket),
            ("POST", re.compile(r"^(?:/v1)?/messages$"), self._protocol(anthropic)),
            ("POST", re.compile(r"^(?:/v1)?/messages/count_tokens$"), self._local(anthropic, anthropic.count_tokens)),
            ("POST", re.compile(r"^(?:/v1)?/embeddings$"), self._local(openai_chat, self._provider_endpoint(provider_routes.embeddings))),
            ("POST", re.compile(r"^(?:/v1)?/images/(?:generations|edits)$"),
             self._local(openai_chat, self._provider_endpoint(provider_routes.images_endpoint))),
            ("GET", re.compile(r"^/health$"), self._health),
            ("GET", re.compile(r"^/(?:backend-api/wham|api/codex)/accounts/check$"), self._accounts_check),
            ("GET", re.compile(r"^/(?:backend-api/(?:wham|codex)|api/codex)/usage$"), self._pooled_usage),
            ("POST", gemini.ACTION_PATH, self._gemini_action),
            ("GET", re.compile(r"^/(?:v1beta|v1alpha)/models$"), self._gemini_models),
            ("GET", re.compile(r"^/(?:v1beta|v1alpha)/models/(?P<id>[^/:]+)$"), self._gemini_model),
            ("GET", re.compile(r"^(?:/v1)?/models$"), self._models),
            ("GET", re.compile(r"^(?:/v1)?/models/catalog$"), self._catalog),
            ("GET", re.compile(r"^(?:/v1)?/models/(?P<id>[^/]+)/info$"), self._model_info),
            ("GET", re.compile(r"^(?:/v1)?/models/(?P<id>[^/]+)$"), self._model),
        ]

    def dispatch(self, request: ClientRequest) -> Outcome:
        path = request.path
        known_path = False
        for method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            if request.method != method and not (method == "GET" and request.method == "HEAD"):
                known_path = True  # another route may take this method on the same path
                continue
            return handler(request, match)
        if known_path:
            return error_dialect(path).render_error(_method_not_allowed(request))
        if is_control_plane_path(path):
            return TO_CONTROL_PLANE
        return not_found(request)

    # --- helpers -------------------------------------------------------------------------------

    def authorize(self, request: ClientRequest) -> ClientKey | None:
        """The client key the caller presented (its limits apply to the turn), or None for the
        proxy key and for callers that need none (no key configured, a trusted host). An unknown,
        disabled or expired client key is refused even then: whoever sent it meant to be limited."""
        expected = self.services.cfg.server.proxy_api_key
        given = extract_api_key(request)
        if is_client_key(given) and not _same(given, expected):  # a proxy key may look like one
            return self.services.key_guard.identify(given)  # type: ignore[arg-type]
        if not expected or request.trusted:
            return None  # a trusted client's credential is for the real API: never compared
        if _same(given, expected):
            return None
        raise Unauthorized("Invalid proxy API key" if given else "Missing proxy API key", code="invalid_api_key")

    def _protocol(self, protocol: ModuleType, *, compact: bool = False) -> Handler:
        parse = functools.partial(protocol.parse_request, compact=True) if compact else protocol.parse_request

        def job(request: ClientRequest, catalog: Any, cfg: Any) -> Outcome:
            prepared = translate(protocol, parse, request, self.services)
            return prepared if isinstance(prepared, Reply) else Job(protocol, prepared, request.path, compact=compact, body=request.body)

        return self._local(protocol, job)

    # --- Responses over a WebSocket ----------------------------------------------------------------

    def _responses_socket(self, request: ClientRequest, _: re.Match[str]) -> Outcome:
        """``GET /v1/responses`` with ``Upgrade: websocket`` (Codex CLI's built-in provider tries it
        first). The key is checked on the handshake, as the API does; the turns come as frames."""

        def accept(request: ClientRequest, catalog: Any, cfg: Any) -> Outcome:
            if request.headers.get("upgrade", "").lower() != "websocket":
                raise _method_not_allowed(request)
            if request.headers.get("sec-websocket-version") != "13" or not request.headers.get("sec-websocket-key"):
                error = ClientError("WebSocket handshake needs Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key", code="upgrade_required")
                error.status = 426
                raise error
            return SocketJob(request)

        return self._local(responses, accept)(request, _)

    def socket_turn(self, socket: SocketJob, body: bytes) -> Job | Reply:
        """One ``response.create`` frame's body as a Responses job: the handshake's headers (and
        its authentication, done once, with the client key it named) with the frame as the body."""
        handshake = socket.request
        request = ClientRequest("POST", handshake.path, handshake.query, handshake.headers, body, handshake.client_addr, trusted=True)
        prepared = translate(responses, responses.parse_request, request, self.services)
        if isinstance(prepared, Reply):
            return prepared
        return Job(responses, prepared, handshake.path, body=body, client_key=socket.client_key)

    def _local(self, protocol: ModuleType, answer: Callable[[ClientRequest, Any, Any], Outcome]) -> Handler:
        """An authenticated endpoint of ``protocol``: ``answer`` makes a reply or a job; every
        refusal is rendered in the protocol's own error envelope."""

        def handle(request: ClientRequest, _: re.Match[str]) -> Outcome:
            try:
                key = self.authorize(request)
                outcome = answer(request, self.services.catalog, self.services.cfg)
                if key is not None and isinstance(outcome, (Job, SocketJob)):
                    outcome.client_key = key
                return outcome
            except ClientError as error:
                return protocol.render_error(error)
            except Exception as exc:  # a translator bug on odd input is still the client's 400, never a 500
                logger.warning("could not answer %s %s", request.method, request.path, exc_info=True)
                return protocol.render_error(BadRequest(f"Invalid request: {type(exc).__name__}: {exc}", code="invalid_request"))

        return handle

    def _provider_endpoint(self, endpoint: Callable[[ClientRequest, Services], Outcome]) -> Callable[[ClientRequest, Any, Any], Outcome]:
        return lambda request, _catalog, _cfg: endpoint(request, self.services)

    # --- plain JSON endpoints --------------------------------------------------------------------

    def _health(self, request: ClientRequest, _: re.Match[str]) -> Reply:
        accounts = self.services.pool.all()
        return json_reply(200, {
            "status": "ok",
            "version": VERSION,
            "accounts": {"total": len(accounts), "active": sum(a.status == "active" for a in accounts)},
        })

    def _models(self, request: ClientRequest, match: re.Match[str]) -> Reply:
        if is_gemini_client(request):
            return self._gemini_models(request, match)
        catalog = self.services.catalog
        return json_reply(200, {"object": "list", "data": [catalog.openai_entry(m) for m in catalog.listing()]})

    def _catalog(self, request: ClientRequest, _: re.Match[str]) -> Reply:
        catalog = self.services.catalog
        return json_reply(200, [catalog.catalog_entry(m) for m in catalog.list()])

    def _model(self, request: ClientRequest, match: re.Match[str]) -> Reply:
        if is_gemini_client(request):
            return self._gemini_model(request, match)
        info = self.services.catalog.get(match["id"])
        if info is None:
            return openai_chat.render_error(NotFound(f"Model '{match['id']}' not found", code="model_not_found", param="model"))
        return json_reply(200, self.services.catalog.openai_entry(info))

    def _model_info(self, request: ClientRequest, match: re.Match[str]) -> Reply:
        info = self.services.catalog.get(match["id"])
        if info is None:
            return json_reply(404, {"error": f"Model '{match['id']}' not found"})
        return json_reply(200, self.services.catalog.catalog_entry(info))

    # --- what Codex CLI signed in with ChatGPT asks its backend besides turns -----------------------

    def _accounts_check(self, request: ClientRequest, _: re.Match[str]) -> Reply:
        """Codex 0.17x asks which workspaces its login may use before its first turn and gives up
        ("workspace routing discovery failed") without an answer. Whatever account it is signed in
        with, the pool serves it: the answer names that account, a personal one. The proxy key, or
        any caller on this machine (the client sends its own ChatGPT token, never forwarded)."""
        if not (request.trusted or is_loopback_address(request.client_addr)):
            try:
                self.authorize(request)
            except ClientError as error:
                return openai_chat.render_error(error)
        account = request.headers.get("chatgpt-account-id") or "codex-proxy"
        entry: dict[str, Any] = {"id": account, "name": None, "profile_picture_url": None, "structure": "personal"}
        if request.trusted:
            # Proxy mode: keep its turns on the host it already talks to (through us), unconstrained.
            # A base URL is plain HTTP, which the client refuses as a backend origin.
            entry.update(workspace_backend_origin="https://chatgpt.com", account_routing_override="NO_CONSTRAINT")
        return json_reply(200, {"accounts": [entry], "account_ordering": [account], "default_account_id": account})

    def _pooled_usage(self, request: ClientRequest, match: re.Match[str]) -> Outcome:
        """The pool's usage in the backend's shape. On our own address the dashboard's view answers
        (it refreshes stale snapshots first); a proxy-mode client asking chatgpt.com for its limits
        (``/status``) gets the pool as the latest answers left it."""
        if not request.trusted:
            return TO_CONTROL_PLANE
        return json_reply(200, usage_body(self.services.pooled_quota(), time.time()))

    # --- Gemini ----------------------------------------------------------------------------------

    def _gemini_action(self, request: ClientRequest, match: re.Match[str]) -> Outcome:
        action = match["action"]
        if action in gemini.GENERATE_ACTIONS:
            return self._gemini_generate(request, match)

        def other(request: ClientRequest, catalog: Any, cfg: Any) -> Outcome:
            if action == "countTokens":
                return gemini.count_tokens(request, catalog, cfg)
            if action in ("embedContent", "batchEmbedContents"):
                error = ClientError(f"{action} is not available: the Codex backend has no embedding models "
                                    "(POST /v1/embeddings serves those of API-key providers)", code="unimplemented")
                error.status = 501
                raise error
            raise BadRequest(f"Unknown action ':{action}' (supported: {', '.join(gemini.GENERATION_METHODS)})")

        return self._local(gemini, other)(request, match)

    def _gemini_models(self, request: ClientRequest, match: re.Match[str]) -> Outcome:
        return self._local(gemini, lambda _r, catalog, _c: json_reply(200, {"models": [gemini.model_entry(m) for m in catalog.listing()]}))(request, match)

    def _gemini_model(self, request: ClientRequest, match: re.Match[str]) -> Outcome:
        model = match["id"].removeprefix("models/")
        return self._local(gemini, lambda _r, catalog, _c: json_reply(200, gemini.resolved_entry(catalog, model)))(request, match)


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(given.encode(), expected.encode())  # type: ignore[union-attr]


def is_control_plane_path(path: str) -> bool:
    return path in CONTROL_PLANE_EXACT or path.startswith(CONTROL_PLANE_PREFIXES)


def error_dialect(path: str) -> ModuleType:
    """Whose error envelope a request gets before (or without) reaching its route: Anthropic's on
    its paths, Gemini's under its prefixes and actions, OpenAI's otherwise."""
    if path.startswith(("/v1beta/", "/v1alpha/")) or gemini.ACTION_PATH.match(path):
        return gemini
    if path in ("/v1/messages", "/messages", "/v1/messages/count_tokens", "/messages/count_tokens"):
        return anthropic
    return openai_chat


def refuse(request: ClientRequest, error: ClientError) -> Reply:
    """``error`` in the envelope of the protocol ``request`` was meant for."""
    return error_dialect(request.path).render_error(error)


def not_found(request: ClientRequest) -> Reply:
    return error_dialect(request.path).render_error(NotFound(f"Unknown path: {request.method} {request.path}", code="not_found"))


def _method_not_allowed(request: ClientRequest) -> ClientError:
    error = ClientError(f"Method {request.method} not allowed for {request.path}", code="method_not_allowed")
    error.status = 405
    return error
