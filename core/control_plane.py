"""Hosting the Flask control plane (dashboard + management API) beside mitmproxy.

mitmproxy's own ``WSGIApp`` runs every request on one shared thread and buffers whole bodies
(mitmproxy-facts.md §4), so the app runs under threaded werkzeug on a loopback port instead; the
gateway forwards ``/``, ``/auth/*`` and ``/admin/*`` there, so users still see a single port.
"""

from __future__ import annotations

import io
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from core.hosts.credentials import Credentials

logger = logging.getLogger(__name__)

SEALED_HEADER = "x-codex-sealed"  # set by the gateway; names what the Unsealer gives back
SEAL_TTL_SECONDS = 60.0


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


class Unsealer:
    """WSGI middleware: hands the app the credentials (and a body holding tokens) that the gateway
    kept off the flow, so the request mitmweb shows and saves carries none of them. A seal is
    random, single-use and expires (an unused one, when the flow died on the way, with the next seal
after ``SEAL_TTL_SECONDS``); the gateway overwrites any seal header a client sends."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._sealed: dict[str, tuple[float, Credentials]] = {}
        self._lock = threading.Lock()

    def seal(self, credentials: Credentials) -> str:
        token = secrets.token_urlsafe(18)
        now = time.monotonic()
        with self._lock:
            for stale in [t for t, (deadline, _) in self._sealed.items() if deadline < now]:
                del self._sealed[stale]
            self._sealed[token] = (now + SEAL_TTL_SECONDS, credentials)
        return token

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        token = environ.pop(_environ_key(SEALED_HEADER), None)
        with self._lock:
            entry = self._sealed.pop(token, None) if token else None
        if entry is not None:
            credentials = entry[1]
            for name in {name for name, _ in credentials.headers}:
                values = [value for n, value in credentials.headers if n == name]
                environ[_environ_key(name)] = ("; " if name == "cookie" else ", ").join(values)
            if credentials.body is not None:
                # Consume the redacted copy first: a kept-alive connection must not see it as the next request.
                sent = environ["wsgi.input"]
                sent.read() if environ.get("wsgi.input_terminated") else sent.read(int(environ.get("CONTENT_LENGTH") or 0))
                environ["wsgi.input"] = io.BytesIO(credentials.body)
                environ["CONTENT_LENGTH"] = str(len(credentials.body))
        return self._app(environ, start_response)


class ControlPlaneServer:
    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0) -> None:
        self.unsealer = Unsealer(app)
        self._server: BaseWSGIServer = make_server(host, port, self.unsealer, threaded=True)
        self._server.daemon_threads = True
        self.port: int = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="control-plane", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
