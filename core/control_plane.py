"""Hosting the Flask control plane (dashboard + management API) beside mitmproxy.

mitmproxy's own ``WSGIApp`` runs every request on one shared thread and buffers whole bodies
(mitmproxy-facts.md §4), so the app runs under threaded werkzeug on a loopback port instead; the
gateway forwards ``/``, ``/auth/*`` and ``/admin/*`` there, so users still see a single port.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

logger = logging.getLogger(__name__)


class ControlPlaneServer:
    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self._server.daemon_threads = True
        self.port: int = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="control-plane", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
