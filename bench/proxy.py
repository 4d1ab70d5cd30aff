"""Starting the real proxy as users run it: ``mitmdump -s addons/codex.py`` in a subprocess with
its own data folder (``<data>/local.yaml``, a real SQLite file) and mitmproxy confdir (its own CA).

The benchmark uses this directly; the test suite's ``tests.support.proxy`` builds on it (tests may
import ``bench``, never the other way round).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Self

import httpx
import orjson
import yaml
from deepmerge import always_merger

from bench.cores import pinned_to

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class MitmProcess:
    """A mitmproxy tool as a subprocess, its output in ``log_path`` (a file: never a terminal)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def launch(self, command: list[str], ready: Callable[[], bool], timeout: float, **popen: Any) -> None:
        """Start ``command`` and wait until ``ready()`` says so."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **popen)
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
    """One proxy process. ``config`` is merged into ``<data>/local.yaml`` before it starts.

    ``verbosity`` None leaves mitmproxy's own default (what a user gets); ``cores`` pins the
    process, and every thread it starts, to those CPU cores.
    """

    def __init__(self, data_dir: Path, config: dict[str, Any], tool: str = "mitmdump", args: tuple[str, ...] = (),
                 verbosity: str | None = None, cores: Collection[int] | None = None, before: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.config = config
        self.tool = tool
        self.args = args
        self.before = before  # arguments ahead of ours, e.g. ("-s", "mine.py") for an addon earlier in the chain
        self.verbosity = verbosity  # mitmproxy refuses a second --set termlog_verbosity in args
        self.cores = cores
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
    def confdir(self) -> Path:
        return self.data_dir / "mitmproxy"

    @property
    def runtime_file(self) -> Path:
        """Written by the proxy once it listens: ``listen`` addresses and its ``pid``."""
        return self.data_dir / "runtime.json"

    def command(self) -> list[str]:
        verbosity = ("--set", f"termlog_verbosity={self.verbosity}") if self.verbosity else ()
        return [str(BIN / self.tool), *self.before, "-s", str(ROOT / "addons" / "codex.py"), "--listen-host", "127.0.0.1", "-p", "0",
                "--set", f"confdir={self.confdir}", *verbosity, *self.args]

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "CODEX_PROXY_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1"}
        env.pop("PORT", None)  # it would override the -p 0 above
        return env

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        local = self.data_dir / "local.yaml"
        existing = yaml.safe_load(local.read_text()) if local.exists() else {}
        local.write_text(yaml.safe_dump(always_merger.merge(existing or {}, self.config)))

    def _runtime_is_ours(self) -> bool:
        """True once runtime.json names this process (a stale file from a previous run does not)."""
        if not self.runtime_file.exists():
            return False
        info = orjson.loads(self.runtime_file.read_bytes())
        if self.process is None or info.get("pid") != self.process.pid:
            return False
        self.runtime = info
        return True

    def start(self, timeout: float = 30.0) -> Self:
        self.write_config()
        self.runtime_file.unlink(missing_ok=True)
        self.launch(self.command(), self._runtime_is_ours, timeout, cwd=ROOT, env=self.environment(),
                    preexec_fn=pinned_to(self.cores))
        return self

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
