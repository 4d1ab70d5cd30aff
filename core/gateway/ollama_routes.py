"""The Ollama listener's route table (the translation itself: core/protocols/ollama).

Everything that arrives on the Ollama port is answered here: Ollama's own API, and ``/v1/*``
served by the main routes as if the proxy key had been sent (Ollama has no keys, so neither
does its port). Like Ollama, it only answers browsers from loopback origins and, while bound to
loopback, only requests whose ``Host`` is a local name (DNS-rebinding guard).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from core.gateway.routes import DataPlane, Job, Outcome, refuse, translate
from core.protocols import ollama
from core.protocols.base import ClientError, ClientRequest, Reply, expect_object, json_reply
from core.services import Services

ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, X-Stainless-*"
_LOCAL_SUFFIXES = (".localhost",)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cors_headers(origin: str | None) -> dict[str, str] | None:
    """Headers for a browser request from ``origin``; None when that origin may not read answers.
    Only loopback origins are let in: any web page could otherwise drive the key-less API."""
    if origin is None:
        return {}
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not _is_loopback(parts.hostname or ""):
        return None
    return {"access-control-allow-origin": origin, "vary": "Origin"}


class OllamaPlane:
    def __init__(self, services: Services, data_plane: DataPlane, listen_host: str) -> None:
        self.services = services
        self.data_plane = data_plane
        self.bound_to_loopback = _is_loopback(listen_host)
        self.started_at = ollama.created_at()
        self._loaded: dict[str, tuple[str, float]] = {}  # name → (model id, expiry), for /api/ps
        self._routes: dict[tuple[str, str], Callable[[ClientRequest], Outcome]] = {
            ("GET", "/"): self._root,
            ("GET", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("POST", "/api/show"): self._show,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/chat"): self._turn,  # the translator tells chat from generate by the path
            ("POST", "/api/generate"): self._turn,
            ("POST", "/api/embed"): self._no_embeddings,
            ("POST", "/api/embeddings"): self._no_embeddings,
        }
        self._paths = {path for _, path in self._routes}

    def dispatch(self, request: ClientRequest) -> Outcome:
        request = dataclasses.replace(request, trusted=True)
        host = urlsplit("//" + (request.headers.get("host") or "")).hostname or ""
        if self.bound_to_loopback and host and not _is_loopback(host):
            return json_reply(403, {"error": f"host {host!r} is not allowed (only local names reach a loopback-bound bridge)"})
        cors = cors_headers(request.headers.get("origin"))
        if cors is None:
            return json_reply(403, {"error": f"origin {request.headers.get('origin')!r} is not allowed"})
        if request.method == "OPTIONS":
            return Reply(204, b"", {**cors, "access-control-allow-methods": ALLOWED_METHODS,
                                    "access-control-allow-headers": ALLOWED_HEADERS, "access-control-max-age": "43200"})
        outcome = self._route(request)
        if isinstance(outcome, Reply):
            outcome.headers.update(cors)
        elif isinstance(outcome, Job):
            outcome.extra_headers.update(cors)
        return outcome

    def refuse(self, request: ClientRequest, error: ClientError) -> Reply:
        """``error`` in Ollama's envelope, or the routed protocol's on ``/v1/*``."""
        if request.path == "/v1" or request.path.startswith("/v1/"):
            return refuse(request, error)
        return ollama.render_error(error)

    def _route(self, request: ClientRequest) -> Outcome:
        path = request.path
        if path == "/v1" or path.startswith("/v1/"):
            return self.data_plane.dispatch(request)
        method = "GET" if request.method == "HEAD" else request.method
        handler = self._routes.get((method, path))
        if handler is not None:
            return handler(request)
        if path in self._paths:
            return json_reply(405, {"error": f"method {request.method} not allowed for {path}"})
        return json_reply(404, {"error": f"unsupported path: {request.method} {path}"})

    # --- model information ---------------------------------------------------------------------

    def _root(self, request: ClientRequest) -> Reply:
        return Reply(200, b"Ollama is running", {"content-type": "text/plain; charset=utf-8"})

    def _version(self, request: ClientRequest) -> Reply:
        return json_reply(200, {"version": self.services.cfg.ollama.version})

    def _tags(self, request: ClientRequest) -> Reply:
        return json_reply(200, ollama.tags_payload(self.services.catalog, self.started_at))

    def _show(self, request: ClientRequest) -> Reply:
        try:
            name, model = ollama.resolve_model(expect_object(request.json()), self.services.catalog)
        except ClientError as error:
            return ollama.render_error(error)
        disable_vision = self.services.cfg.ollama.disable_vision
        return json_reply(200, ollama.show_payload(self.services.catalog, name, model, self.started_at, disable_vision))

    def _forget_expired(self, now: float) -> None:
        self._loaded = {name: entry for name, entry in self._loaded.items() if entry[1] > now}

    def _ps(self, request: ClientRequest) -> Reply:
        now = time.time()
        self._forget_expired(now)
        catalog = self.services.catalog
        far = now + 10 * 365 * 86400  # keep_alive < 0: Ollama reports a far-future expiry
        models = [ollama.ps_entry(catalog, name, model_id, ollama.created_at(min(expiry, far))) for name, (model_id, expiry) in self._loaded.items()]
        return json_reply(200, {"models": models})

    def _no_embeddings(self, request: ClientRequest) -> Reply:
        return json_reply(501, {"error": "embeddings are not available: the Codex backend has no embedding models"})

    # --- generation ------------------------------------------------------------------------------

    def _turn(self, request: ClientRequest) -> Outcome:
        prepared = translate(ollama, ollama.parse_request, request, self.services)
        if isinstance(prepared, Reply):
            return prepared
        context: ollama.OllamaContext = prepared.context
        now = time.time()
        self._forget_expired(now)
        if context.keep_alive > 0:
            self._loaded[context.model] = (context.model_id, now + context.keep_alive)
        else:
            self._loaded.pop(context.model, None)  # keep_alive 0 unloads, as in Ollama
        if prepared.turn is None:
            return ollama.render_load(context)
        return Job(ollama, prepared, request.path, body=request.body)

