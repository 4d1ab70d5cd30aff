"""Running the real proxy for tests: bench/proxy.py's launcher (``mitmdump -s addons/codex.py`` as a
subprocess with its own data folder, config and mitmproxy confdir, exactly as a user starts it),
plus what only tests need: proxy-mode clients, mitmweb's API, the request log, a hard kill."""

from __future__ import annotations

import re
import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from bench import proxy as launcher
from bench.proxy import BIN, ROOT, MitmProcess

__all__ = ["BIN", "ROOT", "MitmProcess", "ProxyProcess"]


class ProxyProcess(launcher.ProxyProcess):
    """One proxy process. ``config`` is written to ``<data>/local.yaml`` before it starts; its log
    stays at warnings unless a test asks for more (the tests read it when something fails)."""

    def __init__(self, data_dir: Path, config: dict[str, Any], tool: str = "mitmdump", args: tuple[str, ...] = (),
                 verbosity: str = "warn", before: tuple[str, ...] = ()) -> None:
        super().__init__(data_dir, config, tool=tool, args=args, verbosity=verbosity, before=before)

    @property
    def ollama_origin(self) -> str:
        """The Ollama bridge's address (``ollama.enabled`` set in the config)."""
        host, port = self.runtime["ollama_listen"]
        return f"http://{host}:{port}"

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

    def accounts(self) -> list[dict[str, Any]]:
        response = self.api("GET", "/auth/accounts")
        assert response.status_code == 200, response.text
        return response.json()["accounts"]

    def remove_all_accounts(self) -> None:
        for account in self.accounts():
            assert self.api("DELETE", f"/auth/accounts/{account['id']}").status_code == 200
