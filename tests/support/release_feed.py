"""A fake of the npm registry's ``GET /@openai/codex/latest`` (the default release feed): the
latest version's manifest in the registry's shape, on loopback. Tests set the version it names,
make it fail with a status, or stop it to make it unreachable."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/@openai/codex/latest"


def manifest(version: str, base: str) -> dict[str, Any]:
    """The fields the registry answers for a version of @openai/codex (``npm view --json``)."""
    tarball = f"{base}/@openai/codex/-/codex-{version}.tgz"
    platforms = ("linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64", "win32-x64", "win32-arm64")
    return {
        "name": "@openai/codex",
        "version": version,
        "description": "Codex CLI is a coding agent from OpenAI that runs locally on your computer.",
        "license": "Apache-2.0",
        "type": "module",
        "bin": {"codex": "bin/codex.js"},
        "engines": {"node": ">=16"},
        "files": ["bin"],
        "repository": {"type": "git", "url": "git+https://github.com/openai/codex.git", "directory": "codex-cli"},
        "optionalDependencies": {f"@openai/codex-{p}": f"npm:@openai/codex@{version}-{p}" for p in platforms},
        "_id": f"@openai/codex@{version}",
        "dist": {"shasum": hashlib.sha1(version.encode()).hexdigest(), "tarball": tarball,
                 "integrity": "sha512-" + hashlib.sha512(version.encode()).hexdigest()[:86] + "=="},
    }


class FakeReleaseFeed:
    def __init__(self, version: str = "0.172.0") -> None:
        self.version = version
        self.status = 200  # anything else: answered with the registry's error body
        self.requests: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                owner.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                if self.path != PATH:
                    self._send(404, {"error": "Not found"})
                elif owner.status != 200:
                    self._send(owner.status, {"error": "Service Unavailable"})
                else:
                    self._send(200, manifest(owner.version, owner.url))

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="release-feed", daemon=True)
        self._running = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def feed_url(self) -> str:
        return self.url + PATH

    def start(self) -> FakeReleaseFeed:
        self._thread.start()
        self._running = True
        return self

    def stop(self) -> None:
        """Unreachable from now on (the port is closed)."""
        if self._running:
            self._server.shutdown()
            self._server.server_close()
            self._running = False
