"""Qwen Code (``@qwen-code/qwen-code``, pinned in tests/cli/qwen/) against the proxy, offline.

Its OpenAI auth type speaks Chat Completions to ``OPENAI_BASE_URL`` with ``OPENAI_API_KEY`` and
``OPENAI_MODEL``. Two settings keep a run to the turns the test scripts: its "managed auto-memory"
would send an extra background request after each answer, and usage statistics and update checks
are off (nothing leaves the machine anyway).
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

QWEN = ROOT / "tests" / "cli" / "qwen" / "node_modules" / ".bin" / "qwen"
SETTINGS = {
    "security": {"auth": {"selectedType": "openai"}},
    "memory": {"enableManagedAutoMemory": False, "enableManagedAutoDream": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
}


def run_qwen(proxy: ProxyProcess, home: Path, prompt: str) -> list[dict[str, Any]]:
    (home / ".qwen").mkdir(exist_ok=True)
    (home / ".qwen" / "settings.json").write_text(json.dumps(SETTINGS))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8", "NO_COLOR": "1",
           "OPENAI_API_KEY": proxy.key, "OPENAI_BASE_URL": proxy.base_url, "OPENAI_MODEL": "gpt-5.4",
           "QWEN_CODE_SUPPRESS_YOLO_WARNING": "1"}
    done = subprocess.run([str(QWEN), "-p", prompt, "--output-format", "json", "--yolo"], cwd=home / "work", env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"qwen exited {done.returncode}\nstdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
    return json.loads(done.stdout)


def result(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return next(m for m in messages if m.get("type") == "result")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return cli_home(tmp_path, QWEN, "Qwen Code")


def test_text_turn(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    fake.script({"text": "Hello from the proxy."})
    outcome = result(run_qwen(proxy, home, "Say hello"))
    assert outcome["subtype"] == "success" and outcome["result"] == "Hello from the proxy."
    (request,) = fake.requests("/codex/responses")  # one turn, no background extras
    body = request["body"]
    assert body["model"] == "gpt-5.4" and {"read_file", "run_shell_command"} <= {t["name"] for t in body["tools"]}
    assert "Say hello" in json.dumps(body["input"])
    assert proxy.request_log("protocol = 'openai' and path = '/v1/chat/completions'")


def test_tool_turn(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    command = "echo qwen-was-here > proof.txt && cat proof.txt"
    fake.script({"tool_calls": [{"name": "run_shell_command", "arguments": {"command": command, "is_background": False},
                                 "call_id": "call_qwen_1"}]},
                {"text": "proof.txt says qwen-was-here."})
    messages = run_qwen(proxy, home, "Write qwen-was-here into proof.txt")
    outcome = result(messages)
    assert outcome["subtype"] == "success" and outcome["result"] == "proof.txt says qwen-was-here."
    assert outcome["stats"]["tools"]["byName"]["run_shell_command"]["success"] == 1
    assert (home / "work" / "proof.txt").read_text().strip() == "qwen-was-here"  # Qwen Code really ran it
    first, second = fake.requests("/codex/responses")
    items = second["body"]["input"]
    call = next(i for i in items if i.get("type") == "function_call")
    output = next(i for i in items if i.get("type") == "function_call_output")
    assert call["call_id"] == output["call_id"] == "call_qwen_1" and json.loads(call["arguments"])["command"] == command
    assert "qwen-was-here" in output["output"]
