"""Cline's CLI (``cline``, pinned in tests/cli/cline/) against the proxy, offline.

``cline auth --provider openai --baseurl …`` saves an OpenAI-compatible provider (Chat Completions)
under ``$HOME/.cline``; ``cline --json "…"`` then runs one task and prints NDJSON events. Its default
session backend is a background "hub" daemon that outlives the command; ``CLINE_SESSION_BACKEND_MODE
=local`` keeps the session in the CLI's own process, so a test leaves nothing running, and
``CLINE_NO_AUTO_UPDATE=1`` skips the npm registry check. (Without ``--yolo``: in yolo mode Cline only
finishes once the model calls its ``submit_and_exit`` tool.)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codex_fake import FakeCodexThread
from tests.support.clis import cli_home
from tests.support.proxy import ROOT, ProxyProcess

CLINE = ROOT / "tests" / "cli" / "cline" / "node_modules" / ".bin" / "cline"


def cline(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8", "NO_COLOR": "1",
           "CLINE_SESSION_BACKEND_MODE": "local", "CLINE_NO_AUTO_UPDATE": "1"}
    done = subprocess.run([str(CLINE), *args], cwd=home / "work", env=env, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"cline exited {done.returncode}\nstdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
    return done


def run_cline(proxy: ProxyProcess, home: Path, prompt: str) -> list[dict[str, Any]]:
    cline(home, "auth", "--provider", "openai", "--apikey", proxy.key, "--modelid", "gpt-5.4", "--baseurl", proxy.base_url)
    done = cline(home, "--json", prompt)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def result(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e.get("type") == "run_result")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return cli_home(tmp_path, CLINE, "Cline")


def test_text_turn(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    fake.script({"text": "Hello from the proxy."})
    outcome = result(run_cline(proxy, home, "Say hello"))
    assert outcome["finishReason"] == "completed" and outcome["text"] == "Hello from the proxy."
    (request,) = fake.requests("/codex/responses")
    body = request["body"]
    assert body["model"] == "gpt-5.4" and body["instructions"].startswith("You are Cline")
    assert {"read_files", "run_commands"} <= {t["name"] for t in body["tools"]}
    assert proxy.request_log("protocol = 'openai' and path = '/v1/chat/completions'")


def test_tool_turn(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    command = "echo cline-was-here > proof.txt && cat proof.txt"
    fake.script({"tool_calls": [{"name": "run_commands", "arguments": {"commands": [command]}, "call_id": "call_cline_1"}]},
                {"text": "proof.txt says cline-was-here."})
    events = run_cline(proxy, home, "Write cline-was-here into proof.txt")
    outcome = result(events)
    assert outcome["iterations"] == 2 and outcome["text"] == "proof.txt says cline-was-here."
    assert (home / "work" / "proof.txt").read_text().strip() == "cline-was-here"  # Cline really ran it
    items = fake.requests("/codex/responses")[-1]["body"]["input"]
    call = next(i for i in items if i.get("type") == "function_call")
    output = next(i for i in items if i.get("type") == "function_call_output")
    assert call["call_id"] == output["call_id"] == "call_cline_1" and json.loads(call["arguments"]) == {"commands": [command]}
    assert "cline-was-here" in output["output"]
