"""The real Gemini CLI (``@google/gemini-cli``, pinned in tests/cli/gemini/) against the proxy, offline.

It is pointed at the proxy with ``GOOGLE_GEMINI_BASE_URL`` and the proxy key as ``GEMINI_API_KEY``.
Gemini CLI 0.61 turns that variable into its "gateway" auth type, which its own validation then
rejects ("Invalid auth method selected"), so the settings pick the API-key auth type explicitly;
the base URL still applies. With ``-m`` the CLI sends one turn per step; without it ("auto") it
first asks a flash-lite classifier for a JSON routing decision.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codex_fake import FakeCodexThread
from tests.support.proxy import ROOT, ProxyProcess

GEMINI = ROOT / "tests" / "cli" / "gemini" / "node_modules" / ".bin" / "gemini"



def run_gemini(proxy: ProxyProcess, home: Path, prompt: str, model: str | None = "gemini-2.5-pro") -> dict[str, Any]:
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
    }))
    work = home / "work"
    env = {**os.environ, "HOME": str(home), "GOOGLE_GEMINI_BASE_URL": proxy.origin, "GEMINI_API_KEY": proxy.key,
           "NO_COLOR": "1"}
    env.pop("GOOGLE_API_KEY", None)
    result = subprocess.run([str(GEMINI), "--skip-trust", "--yolo", *(["-m", model] if model else []), "-p", prompt, "--output-format", "json"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"gemini exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("The secret word is PINEAPPLE.\n")
    return tmp_path


def test_prompt_streams_through_the_proxy(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    fake.script({"text": ["Hello ", "from ", "the proxy!"]})
    output = run_gemini(proxy, home, "Say hello")
    assert output["response"] == "Hello from the proxy!"
    body = fake.requests("/codex/responses")[-1]["body"]
    assert body["model"] == "gpt-5.4"  # gemini-2.5-pro is served by the default model
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}  # the CLI's thinkingBudget 8192
    assert "Say hello" in json.dumps(body["input"])
    assert {"read_file", "run_shell_command"} <= {t["name"] for t in body["tools"]}
    assert all(t["parameters"]["type"] == "object" for t in body["tools"])
    rows = proxy.request_log("protocol = 'gemini' and path like ?", "%:streamGenerateContent")
    assert rows and rows[-1]["stream"] == 1 and rows[-1]["status"] == 200  # the CLI streams (alt=sse)


def test_auto_model_routing(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    """Without ``-m`` the CLI first asks a classifier for JSON (with OpenAPI type names in its
    ``responseJsonSchema``); the schema must reach the backend as valid JSON Schema."""
    fake.script({"text": '{"complexity_reasoning": "a greeting", "complexity_score": 5}'}, {"text": "Hello in auto mode!"})
    output = run_gemini(proxy, home, "Say hello", model=None)
    assert output["response"] == "Hello in auto mode!"
    classifier = fake.requests("/codex/responses")[0]["body"]
    fmt = classifier["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["strict"] is True
    assert fmt["schema"]["type"] == "object" and fmt["schema"]["properties"]["complexity_score"]["type"] == "integer"


def test_tool_round_trip(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    fake.script({"tool_calls": [{"name": "read_file", "arguments": {"file_path": "notes.txt"}, "call_id": "call_r1"}]},
                {"text": "The secret word is PINEAPPLE."})
    output = run_gemini(proxy, home, "What is the secret word in notes.txt?")
    assert output["response"] == "The secret word is PINEAPPLE."
    assert output["stats"]["tools"]["byName"]["read_file"]["success"] == 1  # the CLI really read the file
    items = fake.requests("/codex/responses")[-1]["body"]["input"]
    call = next(i for i in items if i.get("type") == "function_call")
    result = next(i for i in items if i.get("type") == "function_call_output")
    assert call["name"] == "read_file" and json.loads(call["arguments"]) == {"file_path": "notes.txt"}
    assert result["call_id"] == call["call_id"] and "PINEAPPLE" in result["output"]
