"""Starting the proxy the ways a user does: defaults, PORT, demo mode, mitmweb."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import orjson
import yaml

from codex_fake import FakeCodexThread
from tests.support.proxy import ROOT, ProxyProcess
from tests.support.servers import free_port


def test_first_start_creates_key_and_honours_port_env(tmp_path: Path, fake: FakeCodexThread) -> None:
    port = free_port()
    env = {**os.environ, "CODEX_PROXY_DATA_DIR": str(tmp_path), "PORT": str(port)}
    process = subprocess.Popen([str(Path(sys.executable).parent / "mitmdump"), "-s", "addons/codex.py"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            runtime = tmp_path / "runtime.json"
            if runtime.exists() and orjson.loads(runtime.read_bytes())["listen"] == [["127.0.0.1", port]]:
                break
            time.sleep(0.05)
        assert orjson.loads((tmp_path / "runtime.json").read_bytes())["listen"] == [["127.0.0.1", port]]
        key = yaml.safe_load((tmp_path / "local.yaml").read_text())["server"]["proxy_api_key"]
        assert key.startswith("cp-") and len(key) > 20
        assert (tmp_path / "local.yaml").stat().st_mode & 0o077 == 0
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["status"] == "ok"
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode(errors="replace")
    assert key not in output  # the full key is never logged
    assert "codex-proxy ready" in output


def test_demo_mode_streams_without_any_account(tmp_path: Path, fake: FakeCodexThread) -> None:
    proxy = ProxyProcess(tmp_path / "demo", {"server": {"proxy_api_key": "demo-key"}}, args=("--set", "codex_demo=true")).start()
    try:
        client = openai.OpenAI(base_url=proxy.base_url, api_key="demo-key", max_retries=0)
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="gpt-5.4", stream=True, messages=[{"role": "user", "content": "Hello demo"}]) if c.choices)
        assert text == "You said: Hello demo"
        assert [a["label"] for a in proxy.accounts()] == ["demo (fake backend)"]
        assert fake.requests() == []  # the demo's own in-process fake answered, not the test fake
    finally:
        proxy.stop()


def test_mitmweb_serves_the_same_api(start_proxy, fake: FakeCodexThread) -> None:  # type: ignore[no-untyped-def]
    proxy = start_proxy(tool="mitmweb", args=("--set", "web_open_browser=false", "--set", f"web_port={free_port()}"))
    proxy.add_account(__import__("codex_fake", fromlist=["mint_access_token"]).mint_access_token(account_id="acc-web"))
    client = openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0)
    chunks = list(client.chat.completions.create(model="gpt-5.4", stream=True, messages=[{"role": "user", "content": "web"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: web"
