"""The real Claude Code CLI (``@anthropic-ai/claude-code``, pinned in tests/cli/package.json and
installed by ``make test``) run as ``claude -p`` against the proxy and the fake backend.

Everything is loopback: ANTHROPIC_BASE_URL points at the proxy, a throwaway HOME keeps the
user's own Claude settings out, and Claude Code's non-essential traffic (telemetry, error
reports, update checks) is switched off. The fake pops one scripted answer per upstream request,
so each test also checks that Claude Code sent exactly the requests it scripted.
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

CLI_DIR = ROOT / "tests" / "cli" / "node_modules"
MODEL = "claude-sonnet-4-6"


def claude_command() -> list[str]:
    """``claude``; or its wrapper script when npm skipped the postinstall that puts the native
    binary in place (npm can be configured to run no install scripts)."""
    binary = CLI_DIR / ".bin" / "claude"
    if not binary.exists():
        pytest.fail("Claude Code is not installed: run `make test` (it runs `npm ci --prefix tests/cli`)")
    probe = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    if probe.returncode == 0:
        return [str(binary)]
    return ["node", str(CLI_DIR / "@anthropic-ai" / "claude-code" / "cli-wrapper.cjs")]


def run_claude(proxy: ProxyProcess, workdir: Path, prompt: str, *args: str) -> dict[str, Any]:
    home = workdir.parent / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": proxy.origin,
        "ANTHROPIC_API_KEY": proxy.key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_BUG_COMMAND": "1",
    }
    command = [*claude_command(), "-p", prompt, "--model", MODEL, "--output-format", "json", *args]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"claude exited {done.returncode}\nstdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
    return json.loads(done.stdout)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_claude_code_text_turn(proxy: ProxyProcess, fake: FakeCodexThread, workdir: Path) -> None:
    fake.script({"text": "Hello from Codex, through the proxy."})
    result = run_claude(proxy, workdir, "Say hello")
    assert result["is_error"] is False and result["subtype"] == "success"
    assert result["result"] == "Hello from Codex, through the proxy."
    assert MODEL in result["modelUsage"]  # the model name echoed back is the one Claude Code asked for

    (request,) = fake.requests("/codex/responses")
    body = request["body"]
    assert body["model"] == "gpt-5.4"
    assert "x-anthropic-billing-header" not in body["instructions"] and len(body["instructions"]) > 1000
    assert {"Bash", "Read", "Edit", "Write"} <= {t.get("name") for t in body["tools"]}
    assert body["reasoning"]["effort"] in ("high", "xhigh")
    assert body["input"][-1]["role"] == "user"
    assert body["input"][-1]["content"][-1]["text"] == "Say hello"


def test_claude_code_runs_a_tool_and_sends_the_result_back(proxy: ProxyProcess, fake: FakeCodexThread, workdir: Path) -> None:
    command = "echo codex-proxy-ok > proof.txt && cat proof.txt"
    fake.script(
        {"reasoning": "I will write the file with Bash.",
         "tool_calls": [{"name": "Bash", "arguments": {"command": command, "description": "Write proof.txt"}, "call_id": "call_cc_1"}]},
        {"text": "proof.txt now contains codex-proxy-ok."},
    )
    result = run_claude(proxy, workdir, "Write codex-proxy-ok into proof.txt using Bash", "--allowedTools", "Bash")
    assert result["is_error"] is False and result["num_turns"] == 2
    assert result["result"] == "proof.txt now contains codex-proxy-ok."
    assert (workdir / "proof.txt").read_text().strip() == "codex-proxy-ok"  # Claude Code really ran the call

    first, second = fake.requests("/codex/responses")
    items = second["body"]["input"]
    call = next(i for i in items if i.get("type") == "function_call")
    output = next(i for i in items if i.get("type") == "function_call_output")
    assert call["call_id"] == output["call_id"] == "call_cc_1"  # the id Claude Code saw is the one it sent back
    assert json.loads(call["arguments"])["command"] == command
    assert "codex-proxy-ok" in output["output"]
    reasoning = [i for i in items if i.get("type") == "reasoning"]
    assert len(reasoning) == 1 and reasoning[0]["encrypted_content"].startswith("gAAAAA")  # thinking came back and was replayed
    assert items.index(reasoning[0]) < items.index(call)
    assert first["body"]["prompt_cache_key"] == second["body"]["prompt_cache_key"]  # one session, one cache key


def test_claude_code_tool_search_loads_a_deferred_tool(proxy: ProxyProcess, fake: FakeCodexThread, workdir: Path) -> None:
    fake.script({"tool_calls": [{"name": "ToolSearch", "arguments": {"query": "select:NotebookEdit"}, "call_id": "call_ts"}]},
                {"text": "NotebookEdit is ready."})
    result = run_claude(proxy, workdir, "Load the notebook editing tool")
    assert result["is_error"] is False and result["result"] == "NotebookEdit is ready."
    first, second = (r["body"] for r in fake.requests("/codex/responses"))
    names = [{t.get("name") for t in body["tools"]} for body in (first, second)]
    assert "NotebookEdit" not in names[0] and "NotebookEdit" in names[1]  # sent once tool search loaded it
    assert "DeferredToolPlaceholder" not in names[0] | names[1]
    output = next(i for i in second["input"] if i.get("type") == "function_call_output")
    assert output["call_id"] == "call_ts" and "NotebookEdit" in output["output"]


def test_claude_code_parallel_tool_calls(proxy: ProxyProcess, fake: FakeCodexThread, workdir: Path) -> None:
    fake.script({"tool_calls": [
        {"name": "Bash", "arguments": {"command": "echo one > a.txt", "description": "First file"}, "call_id": "call_a"},
        {"name": "Bash", "arguments": {"command": "echo two > b.txt", "description": "Second file"}, "call_id": "call_b"},
    ]}, {"text": "Both files written."})
    result = run_claude(proxy, workdir, "Write a.txt and b.txt", "--allowedTools", "Bash")
    assert result["result"] == "Both files written."
    assert (workdir / "a.txt").read_text() == "one\n" and (workdir / "b.txt").read_text() == "two\n"
    items = fake.requests("/codex/responses")[1]["body"]["input"]
    outputs = [i["call_id"] for i in items if i.get("type") == "function_call_output"]
    assert outputs == ["call_a", "call_b"]


def test_claude_code_web_search_uses_the_hosted_search(proxy: ProxyProcess, fake: FakeCodexThread, workdir: Path) -> None:
    fake.script(
        {"tool_calls": [{"name": "ToolSearch", "arguments": {"query": "select:WebSearch"}, "call_id": "call_ts"}]},
        {"tool_calls": [{"name": "WebSearch", "arguments": {"query": "codex proxy python"}, "call_id": "call_ws"}]},
        {"web_search": {"query": "codex proxy python"}, "text": "Codex proxy is a local gateway."},  # WebSearch's sub-request
        {"text": "It is a local gateway."},
    )
    result = run_claude(proxy, workdir, "Search the web for codex proxy", "--allowedTools", "WebSearch")
    assert result["result"] == "It is a local gateway."
    bodies = [r["body"] for r in fake.requests("/codex/responses")]
    assert len(bodies) == 4
    search = bodies[2]
    assert search["tools"] == [{"type": "web_search"}] and search["tool_choice"] == {"type": "web_search"}
    assert all(t["type"] == "function" for body in (bodies[0], bodies[1], bodies[3]) for t in body["tools"])  # nothing injected
    output = next(i for i in bodies[3]["input"] if i.get("type") == "function_call_output" and i["call_id"] == "call_ws")
    assert "Codex proxy is a local gateway." in output["output"]
