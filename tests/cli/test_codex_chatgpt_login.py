"""Codex CLI signed in with ChatGPT, its built-in provider untouched, with the proxy as its HTTPS proxy
(``HTTPS_PROXY`` and ``CODEX_CA_CERTIFICATE``): its WebSocket to ``chatgpt.com`` is served by the pool,
and ``/status`` in its terminal UI shows the pool's limits, not those of the account it logged in with.

Codex 0.17x first asks ``/backend-api/wham/accounts/check`` which workspace to route to; the proxy
answers for the client's own account. ``/status`` reads ``/backend-api/wham/usage``, which in proxy
mode is the pooled view. The TUI runs in a pseudo-terminal, its screen rendered by ``pyte`` (a
VT100 emulator); ``--no-daemon`` keeps it from leaving a background app server behind.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pyte
import pytest

from codex_fake import FakeCodexThread, mint_access_token, mint_id_token, mint_refresh_token
from tests.support.clis import cli_home
from tests.support.proxy import ROOT, ProxyProcess

CODEX = ROOT / "tests" / "cli" / "codex" / "node_modules" / ".bin" / "codex"


@pytest.fixture
def home(tmp_path: Path, proxy: ProxyProcess) -> Path:
    """A home signed in with a ChatGPT account of its own (not one of the pool's)."""
    home = cli_home(tmp_path, CODEX, "Codex CLI")
    codex_home = home / ".codex"
    codex_home.mkdir()
    claims = {"account_id": "client-own", "plan": "plus", "email": "client@example.com", "expires_in": 30 * 24 * 3600}
    tokens = {"id_token": mint_id_token(**claims), "access_token": mint_access_token(**claims),
              "refresh_token": mint_refresh_token("client-own", plan="plus", email="client@example.com"), "account_id": "client-own"}
    now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
    (codex_home / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": None, "tokens": tokens, "last_refresh": now}))
    (codex_home / "config.toml").write_text(f'[projects."{home / "work"}"]\ntrust_level = "trusted"\n[tui]\nscreen_reader_detection_done = true\n')
    return home


def environment(proxy: ProxyProcess, home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(home), "CODEX_HOME": str(home / ".codex"),
            "HTTPS_PROXY": proxy.origin, "CODEX_CA_CERTIFICATE": str(proxy.ca_cert), "TERM": "xterm-256color",
            "RUST_LOG": "codex_api=info"}


def test_exec_over_the_intercepted_websocket(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    fake.script({"text": "Hello through proxy mode."})
    done = subprocess.run([str(CODEX), "exec", "--json", "--skip-git-repo-check", "Say hello"], cwd=home / "work",
                          env=environment(proxy, home), capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [e["item"]["text"] for e in events if e.get("type") == "item.completed" and e["item"]["type"] == "agent_message"] == [
        "Hello through proxy mode."]
    assert "successfully connected to Responses WebSocket" in done.stderr and "Falling back" not in done.stderr
    (request,) = fake.requests("/codex/responses")
    assert request["headers"]["chatgpt-account-id"] == "acc-1"  # the pool's account, not the client's own
    assert "client-own" not in json.dumps(request["headers"])


class Terminal:
    """A CLI in a pseudo-terminal (its controlling terminal, via util-linux ``setsid --ctty``), its
    screen as a VT100 would show it."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], columns: int = 120, lines: int = 50) -> None:
        self.screen = pyte.Screen(columns, lines)
        self._stream = pyte.ByteStream(self.screen)
        self.fd, tty = os.openpty()
        fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        self.process = subprocess.Popen(["setsid", "--ctty", *command], cwd=cwd, env=env, stdin=tty, stdout=tty, stderr=tty)
        os.close(tty)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display if line.strip())

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.text())) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on screen after {timeout}s:\n{self.text()}")
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                data = os.read(self.fd, 65536)
                self._stream.feed(data)
                if b"\x1b[6n" in data:  # the TUI asks where the cursor is
                    os.write(self.fd, b"\x1b[1;1R")
        return match

    def type(self, text: str) -> None:
        for char in text:
            os.write(self.fd, char.encode())
            time.sleep(0.02)
        time.sleep(0.3)
        os.write(self.fd, b"\r")

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)
        os.close(self.fd)


def test_status_shows_the_pooled_limits(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    proxy.add_account(mint_access_token(account_id="acc-2", plan="pro", email="two@example.com"), label="two")
    fake.set_usage("acc-1", primary_used=30.0, secondary_used=10.0)
    fake.set_usage("acc-2", primary_used=70.0, secondary_used=50.0)
    assert proxy.api("GET", "/auth/accounts?quota=fresh").status_code == 200  # the proxy reads both accounts' usage
    fake.script({"text": "Hello from the pool."})
    terminal = Terminal([str(CODEX), "--no-daemon"], home / "work", environment(proxy, home))
    try:
        terminal.wait_for("Ask Codex to do anything")
        terminal.type("Say hello")
        terminal.wait_for("Hello from the pool.")
        terminal.type("/status")
        short = terminal.wait_for(r"5h limit:.*?(\d+)% left")
        weekly = terminal.wait_for(r"Weekly limit:.*?(\d+)% left")
        screen = terminal.text()
    finally:
        terminal.close()
    # The pool's mean use per window (30% and 70% → 50% used; 10% and 50% → 30% used), not the
    # signed-in account's (which the backend never sees).
    assert (int(short[1]), int(weekly[1])) == (50, 70), screen
    usage = [r for r in fake.requests() if r["path"].endswith("/wham/usage")]
    assert all("client-own" not in json.dumps(r.get("headers", {})) for r in usage)  # its own token never left
