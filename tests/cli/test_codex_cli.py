"""The real Codex CLI (``@openai/codex``, pinned in tests/cli/codex/) against the proxy, offline.

Its built-in ``openai`` provider, pointed at the proxy with ``openai_base_url`` and the proxy key as
its API key, opens a WebSocket ``GET /v1/responses`` first and only falls back to HTTP after five
retries (about 7 s per session). The proxy serves that socket, so a turn takes as long as through a
custom provider over HTTP. The CLI's own log (``RUST_LOG``) says which transport it used.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from codex_fake import FakeCodexThread
from tests.support.mitmweb import eventually
from tests.support.clis import cli_home
from tests.support.proxy import ROOT, ProxyProcess

CODEX = ROOT / "tests" / "cli" / "codex" / "node_modules" / ".bin" / "codex"
# What the five WebSocket retries before the HTTP fallback cost the CLI (0.2+0.4+0.8+1.7+3.4 s).
FALLBACK_DELAY = 6.0


def write_config(home: Path, proxy: ProxyProcess, *, custom: bool = False) -> None:
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    work = home / "work"
    if custom:  # the way the README set Codex up before: a custom provider over HTTP
        provider = (f'model_provider = "proxy"\n[model_providers.proxy]\nname = "proxy"\nbase_url = "{proxy.base_url}"\n'
                    f'wire_api = "responses"\nhttp_headers = {{ Authorization = "Bearer {proxy.key}" }}\n')
    else:
        provider = f'openai_base_url = "{proxy.base_url}"\n'
    (codex_home / "config.toml").write_text(
        f'model = "gpt-5.4"\n{provider}[projects."{work}"]\ntrust_level = "trusted"\n')


def run_codex(proxy: ProxyProcess, home: Path, prompt: str, *, custom: bool = False) -> tuple[list[dict[str, Any]], str, float]:
    """``codex exec --json``: its events, its log, and how long it took."""
    write_config(home, proxy, custom=custom)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(home),
           "CODEX_HOME": str(home / ".codex"), "CODEX_API_KEY": proxy.key, "RUST_LOG": "codex_api=info,codex_core::client=info"}
    command = [str(CODEX), "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", prompt]
    started = time.monotonic()
    done = subprocess.run(command, cwd=home / "work", env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"codex exited {done.returncode}\nstdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-5000:]}"
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return events, done.stderr, elapsed


def agent_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["item"].get("text", "") for e in events
                   if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return cli_home(tmp_path, CODEX, "Codex CLI")


def test_builtin_provider_text_turn_over_websocket(proxy: ProxyProcess, fake: FakeCodexThread, home: Path,
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    # First the same turn through a custom provider over HTTP (no WebSocket there), for comparison.
    fake.script({"text": "Hello over HTTP."})
    other = tmp_path_factory.mktemp("custom")
    (other / "work").mkdir()
    custom_events, _, custom_elapsed = run_codex(proxy, other, "Say hello", custom=True)
    assert agent_text(custom_events) == "Hello over HTTP."

    fake.script({"text": "Hello over the socket."})
    events, log, elapsed = run_codex(proxy, home, "Say hello")
    assert agent_text(events) == "Hello over the socket."
    assert "successfully connected to Responses WebSocket" in log and "status=101" in log
    assert "Falling back from WebSockets" not in log and "Reconnecting" not in log
    print(f"\nbuilt-in provider (WebSocket): {elapsed:.2f}s, custom provider (HTTP): {custom_elapsed:.2f}s")
    assert elapsed < custom_elapsed + FALLBACK_DELAY / 2  # no fallback delay (it alone would add ~7 s)

    body = fake.requests("/codex/responses")[-1]["body"]
    assert body["model"] == "gpt-5.4" and body["input"][-1]["content"][-1]["text"] == "Say hello"
    assert {"exec_command"} <= {t.get("name") for t in body["tools"]}
    eventually(lambda: len(proxy.request_log("protocol = 'responses' and path = '/v1/responses' and status = 200")) >= 2)


def test_builtin_provider_runs_a_tool_and_sends_the_result_back(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    command = "echo codex-proxy-ok > proof.txt && cat proof.txt"
    fake.script(
        {"reasoning": "I will write the file.", "tool_calls": [{"name": "exec_command", "arguments": {"cmd": command}, "call_id": "call_ws_1"}]},
        {"text": "proof.txt now says codex-proxy-ok."},
    )
    events, log, elapsed = run_codex(proxy, home, "Write codex-proxy-ok into proof.txt")
    assert agent_text(events) == "proof.txt now says codex-proxy-ok."
    assert (home / "work" / "proof.txt").read_text().strip() == "codex-proxy-ok"  # the CLI really ran it
    assert "Falling back from WebSockets" not in log and "Reconnecting" not in log
    assert elapsed < FALLBACK_DELAY

    first, second = (r["body"] for r in fake.requests("/codex/responses"))
    # The CLI continued on the socket with previous_response_id and only the new items; the backend
    # (which keeps nothing) got the whole conversation: the call, then its output.
    items = second["input"]
    call = next(i for i in items if i.get("type") == "function_call")
    output = next(i for i in items if i.get("type") == "function_call_output")
    assert call["call_id"] == output["call_id"] == "call_ws_1" and json.loads(call["arguments"])["cmd"] == command
    assert "codex-proxy-ok" in json.dumps(output["output"])
    assert items.index(call) < items.index(output)
    assert first["input"] == items[: len(first["input"])]  # the first turn's input, replayed in full
    reasoning = [i for i in items if i.get("type") == "reasoning"]
    assert len(reasoning) == 1 and reasoning[0]["encrypted_content"].startswith("gAAAAA")


def test_exhausted_pool_is_reported_as_a_usage_limit(proxy: ProxyProcess, fake: FakeCodexThread, home: Path) -> None:
    from codex_fake import faults as sc

    fake.fault("acc-1", sc.usage_limit_429(resets_in=1800))
    write_config(home, proxy)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "CODEX_HOME": str(home / ".codex"),
           "CODEX_API_KEY": proxy.key}
    done = subprocess.run([str(CODEX), "exec", "--json", "--skip-git-repo-check", "Say hello"], cwd=home / "work", env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failures = [e for e in events if e.get("type") in ("turn.failed", "error")]
    assert failures, done.stdout[-3000:] + done.stderr[-3000:]
    message = json.dumps(failures).replace("\\u2019", "'")
    # Codex's own usage-limit message (from plan_type and resets_at), not a retry or a stream error.
    assert "hit your usage limit" in message and "Upgrade to Pro" in message and "try again at" in message
    assert len(fake.requests("/codex/responses")) == 1  # one upstream try; the CLI did not retry a usage limit
