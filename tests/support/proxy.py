"""Running the real proxy for tests: ``mitmdump -s addons/codex.py`` as a subprocess with its own
data folder (a real SQLite file), config and mitmproxy confdir (its own CA), exactly as a user
starts it."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from deepmerge import always_merger

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class MitmProcess:
    """A mitmproxy tool as a subprocess, its output in ``log_path``."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self, command: list[str], ready: Callable[[], bool], timeout: float, **popen: Any) -> None:
        """Start ``command`` and wait until ``ready()`` says so."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(command, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, **popen)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {self.process.returncode}:\n{self.log()}")
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{command[0]} did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class ProxyProcess(MitmProcess):
    """One proxy process. ``config`` is written to ``<data>/local.yaml`` before it starts."""

    def __init__(self, data_dir: Path, config: dict[str, Any], tool: str = "mitmdump", args: tuple[str, ...] = (),
                 verbosity: str = "warn", before: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.config = config
        self.tool = tool
        self.args = args
        self.before = before  # arguments ahead of ours, e.g. ("-s", "mine.py") for an addon earlier in the chain
        self.verbosity = verbosity  # mitmproxy refuses a second --set termlog_verbosity in args
        self.runtime: dict[str, Any] = {}
        super().__init__(data_dir / f"{tool}.log")

    @property
    def key(self) -> str:
        return str(self.config["server"]["proxy_api_key"])

    @property
    def port(self) -> int:
        return int(self.runtime["listen"][0][1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"

    @property
    def ollama_origin(self) -> str:
        """The Ollama bridge's address (``ollama.enabled`` set in the config)."""
        host, port = self.runtime["ollama_listen"]
        return f"http://{host}:{port}"

    @property
    def confdir(self) -> Path:
        return self.data_dir / "mitmproxy"

    @property
    def ca_cert(self) -> Path:
        """The CA a proxy-mode client must trust (mitmproxy creates it in its confdir)."""
        return self.confdir / "mitmproxy-ca-cert.pem"

    def tls_context(self) -> ssl.SSLContext:
        """Trusts this process's CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def https_client(self, http: Any = httpx, **kwargs: Any) -> Any:
        """An HTTP client that uses this process as its HTTPS proxy and trusts its CA. ``http`` is
        the client library: ``httpx``, or ``httpx2`` (the fork the anthropic SDK 2.x requires)."""
        return http.Client(proxy=self.origin, verify=self.tls_context(), timeout=30, **kwargs)

    def web_endpoint(self) -> tuple[str, str]:
        """mitmweb's URL and auth token, from its startup log line (needs ``termlog_verbosity=info``)."""
        match = None
        deadline = time.monotonic() + 10
        while match is None and time.monotonic() < deadline:
            match = re.search(r"Web server listening at (http://\S+?)/\?token=(\w+)", self.log())
            if match is None:
                time.sleep(0.05)
        assert match is not None, f"no mitmweb URL in the log:\n{self.log()}"
        return match[1], match[2]

    def web_api(self) -> httpx.Client:
        """mitmweb's REST API, authenticated."""
        url, token = self.web_endpoint()
        return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def start(self, timeout: float = 30.0) -> ProxyProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        local = self.data_dir / "local.yaml"
        existing = yaml.safe_load(local.read_text()) if local.exists() else {}
        local.write_text(yaml.safe_dump(always_merger.merge(existing or {}, self.config)))
        runtime_file = self.data_dir / "runtime.json"
        runtime_file.unlink(missing_ok=True)
        env = {**os.environ, "CODEX_PROXY_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1"}
        env.pop("PORT", None)
        command = [str(BIN / self.tool), *self.before, "-s", str(ROOT / "addons" / "codex.py"), "--listen-host", "127.0.0.1", "-p", "0",
                   "--set", f"confdir={self.confdir}", "--set", f"termlog_verbosity={self.verbosity}", *self.args]

        def ready() -> bool:
            if runtime_file.exists():
                info = orjson.loads(runtime_file.read_bytes())
                if self.process is not None and info.get("pid") == self.process.pid:
                    self.runtime = info
                    return True
            return False

        self.launch(command, ready, timeout, cwd=ROOT, env=env)
        return self

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(5)

    def request_log(self, where: str, *params: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Rows of the SQLite request log matching ``where`` (written in batches: polled until they appear)."""
        import sqlite_utils

        db = sqlite_utils.Database(self.data_dir / "codex-proxy.db")
        deadline = time.monotonic() + timeout
        while True:
            rows = list(db.query(f"select * from request_log where {where}", params))
            if rows or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    # --- management API ---------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.origin + path, headers=headers, timeout=30, **kwargs)

    def add_account(self, token: str, refresh_token: str | None = None, label: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"token": token}
        if refresh_token:
            body["refreshToken"] = refresh_token
        if label:
            body["label"] = label
        response = self.api("POST", "/auth/accounts", json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()["account"]

    def accounts(self) -> list[dict[str, Any]]:
        response = self.api("GET", "/auth/accounts")
        assert response.status_code == 200, response.text
        return response.json()["accounts"]

    def remove_all_accounts(self) -> None:
        for account in self.accounts():
            assert self.api("DELETE", f"/auth/accounts/{account['id']}").status_code == 200
