"""The pi coding agent (``@mariozechner/pi-coding-agent``, pinned in tests/cli/pi/) against the proxy,
offline, on each of its three wires: Chat Completions, Responses and Anthropic Messages.

pi reads custom providers from ``$PI_CODING_AGENT_DIR/models.json`` (``baseUrl``, ``api``, ``apiKey``,
the models); ``pi -p --mode json`` prints its session events as JSON lines. ``PI_OFFLINE=1`` turns off
its startup network calls (update check, telemetry).
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

PI = ROOT / "tests" / "cli" / "pi" / "node_modules" / ".bin" / "pi"
# provider name → (its wire, the base URL's path, the model it asks for, the log's protocol)
WIRES = {
    "chat": ("openai-completions", "/v1", "gpt-5.4", "openai"),
    "responses": ("openai-responses", "/v1", "gpt-5.4", "responses"),
    "anthropic": ("anthropic-messages", "", "claude-sonnet-4-6", "anthropic"),
}


def run_pi(proxy: ProxyProcess, home: Path, wire: str, prompt: str) -> list[dict[str, Any]]:
    api, path, model, _ = WIRES[wire]
    agent = home / ".pi" / "agent"
    agent.mkdir(parents=True, exist_ok=True)
    provider = {"baseUrl": proxy.origin + path, "api": api, "apiKey": proxy.key, "models": [{"id": model, "reasoning": True}]}
    (agent / "models.json").write_text(json.dumps({"providers": {f"proxy-{wire}": provider}}))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "PI_CODING_AGENT_DIR": str(agent), "PI_OFFLINE": "1", "PI_TELEMETRY": "0", "NO_COLOR": "1"}
    done = subprocess.run([str(PI), "-p", "--mode", "json", "--model", f"proxy-{wire}/{model}", prompt], cwd=home / "work",
                          env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"pi exited {done.returncode}\nstdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def assistant_messages(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["message"] for e in events if e.get("type") == "message_end" and e["message"].get("role") == "assistant"]


def text_of(message: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in message["content"] if part.get("type") == "text")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return cli_home(tmp_path, PI, "pi")


@pytest.mark.parametrize("wire", WIRES)
def test_text_turn(proxy: ProxyProcess, fake: FakeCodexThread, home: Path, wire: str) -> None:
    fake.script({"reasoning": "Greeting.", "text": "Hello from the proxy."})
    (answer,) = assistant_messages(run_pi(proxy, home, wire, "Say hello"))
    assert answer.get("errorMessage") is None and answer["stopReason"] == "stop"
    assert text_of(answer) == "Hello from the proxy."
    assert [part["thinking"] for part in answer["content"] if part["type"] == "thinking"] == ["Greeting."]
    body = fake.requests("/codex/responses")[-1]["body"]
    assert body["model"] == "gpt-5.4" and {"read", "bash", "edit", "write"} <= {t["name"] for t in body["tools"]}
    assert "Say hello" in json.dumps(body["input"])
    assert proxy.request_log("protocol = ?", WIRES[wire][3])


@pytest.mark.parametrize("wire", WIRES)
def test_tool_turn(proxy: ProxyProcess, fake: FakeCodexThread, home: Path, wire: str) -> None:
    command = "echo pi-was-here > proof.txt && cat proof.txt"
    fake.script({"reasoning": "Use bash.", "tool_calls": [{"name": "bash", "arguments": {"command": command}, "call_id": "call_pi_1"}]},
                {"text": "proof.txt says pi-was-here."})
    first, second = assistant_messages(run_pi(proxy, home, wire, "Write pi-was-here into proof.txt"))
    assert first["stopReason"] == "toolUse" and text_of(second) == "proof.txt says pi-was-here."
    assert (home / "work" / "proof.txt").read_text().strip() == "pi-was-here"  # pi really ran it
    items = fake.requests("/codex/responses")[-1]["body"]["input"]
    call = next(i for i in items if i.get("type") == "function_call")
    output = next(i for i in items if i.get("type") == "function_call_output")
    assert call["name"] == "bash" and json.loads(call["arguments"]) == {"command": command}
    assert output["call_id"] == call["call_id"] and "pi-was-here" in json.dumps(output["output"])
    reasoning = [i for i in items if i.get("type") == "reasoning"]
    if wire != "chat":  # Chat Completions has no way to send reasoning back; the other two replay it
        assert len(reasoning) == 1 and reasoning[0]["encrypted_content"].startswith("gAAAAA")
