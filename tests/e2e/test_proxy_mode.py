"""Proxy mode: official SDKs that keep their real base URL (https://api.openai.com/v1, ...) and
use the gateway as their HTTPS proxy, trusting mitmproxy's CA. Everything is answered locally by
the same translators and account pool; other hosts are tunnelled untouched."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from codex_fake import FakeCodexThread
from tests.conftest import PROXY_KEY, proxy_config, with_one_account
from tests.support.proxy import ProxyProcess
from tests.support.servers import (
    HELLO,
    echo_server,
    https_server,
    non_loopback_address,
    self_signed_certificate,
)

CLIENT_KEY = "sk-proj-client-own-real-key-0123456789"  # what the client believes is its OpenAI key


@pytest.fixture(scope="module")
def intercepting(fake_server: FakeCodexThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(tmp_path_factory.mktemp("proxy-mode"), proxy_config(fake_server)).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def gateway(intercepting: ProxyProcess, fake: FakeCodexThread) -> ProxyProcess:
    return with_one_account(intercepting)


def openai_sdk(proxy: ProxyProcess, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key=CLIENT_KEY, http_client=proxy.https_client(), max_retries=0, **kwargs)


def assert_nothing_of_the_client_went_upstream(fake: FakeCodexThread) -> None:
    for request in fake.requests():
        assert CLIENT_KEY not in repr(request)
        assert request["headers"].get("authorization", "").startswith("Bearer ey")  # the pool account's JWT


def test_ca_is_created_in_the_confdir(gateway: ProxyProcess) -> None:
    assert gateway.ca_cert.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_openai_chat_through_the_proxy(gateway: ProxyProcess, fake: FakeCodexThread) -> None:
    client = openai_sdk(gateway)
    fake.script({"text": "Answered locally"}, {"text": ["Stream", "ed ", "locally"]})
    answer = client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Answered locally"
    chunks = client.chat.completions.create(model="gpt-5.4", stream=True, messages=[{"role": "user", "content": "hi"}])
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streamed locally"
    assert len(fake.requests("/codex/responses")) == 2
    assert_nothing_of_the_client_went_upstream(fake)


def test_openai_responses_and_models_through_the_proxy(gateway: ProxyProcess, fake: FakeCodexThread) -> None:
    client = openai_sdk(gateway)
    fake.script({"text": ["Hello", " responses"]})
    with client.responses.stream(model="gpt-5.4", input="hi") as stream:
        assert "".join(e.delta for e in stream if e.type == "response.output_text.delta") == "Hello responses"
    assert "gpt-5.4" in [m.id for m in client.models.list()]
    assert_nothing_of_the_client_went_upstream(fake)


def test_codex_signed_in_with_chatgpt_reaches_the_responses_route(gateway: ProxyProcess, fake: FakeCodexThread) -> None:
    """Codex CLI/Desktop with a ChatGPT login call chatgpt.com/backend-api/codex/responses themselves."""
    client = openai_sdk(gateway, base_url="https://chatgpt.com/backend-api/codex",
                        default_headers={"chatgpt-account-id": "someone-elses-account"})
    fake.script({"text": "via chatgpt.com"})
    events = list(client.responses.create(model="gpt-5.4", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "via chatgpt.com"
    upstream = fake.requests("/codex/responses")[-1]
    assert upstream["headers"]["chatgpt-account-id"] == "acc-1"  # our pool's account, not the client's
    assert_nothing_of_the_client_went_upstream(fake)


def test_anthropic_sdk_through_the_proxy(gateway: ProxyProcess, fake: FakeCodexThread) -> None:
    import anthropic
    import httpx2

    client = anthropic.Anthropic(api_key="sk-ant-client-own-key", http_client=gateway.https_client(httpx2), max_retries=0)
    fake.script({"text": "Anthropic, answered locally"})
    message = client.messages.create(model="gpt-5.4", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    assert "".join(block.text for block in message.content if block.type == "text") == "Anthropic, answered locally"
    assert all("sk-ant-client-own-key" not in repr(r) for r in fake.requests())


def cli_env(proxy: ProxyProcess, home: Path, **extra: str) -> dict[str, str]:
    """A Node CLI that keeps its real API URL: only the proxy and its CA are set, in a throwaway HOME."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "NO_COLOR": "1", "HOME": str(home),
            "HTTPS_PROXY": proxy.origin, "NODE_EXTRA_CA_CERTS": str(proxy.ca_cert), **extra}


def run_cli(command: list[str], cwd: Path, env: dict[str, str]) -> Any:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{command[0]} exited {done.returncode}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def test_claude_code_cli_through_the_proxy(gateway: ProxyProcess, fake: FakeCodexThread, tmp_path: Path) -> None:
    """The real Claude Code with its own (real-looking) key, which goes nowhere."""
    from tests.e2e.test_claude_code_cli import (  # the CLI pinned by the Anthropic work
        MODEL,
        claude_command,
    )

    (tmp_path / "work").mkdir()
    env = cli_env(gateway, tmp_path, ANTHROPIC_API_KEY="sk-ant-api03-own-key", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
                  DISABLE_TELEMETRY="1", DISABLE_ERROR_REPORTING="1", DISABLE_AUTOUPDATER="1", DISABLE_BUG_COMMAND="1")
    fake.script({"text": "Claude Code, through HTTPS_PROXY."})
    result = run_cli([*claude_command(), "-p", "Say hello", "--model", MODEL, "--output-format", "json"], tmp_path / "work", env)
    assert result["result"] == "Claude Code, through HTTPS_PROXY."
    assert len(fake.requests("/codex/responses")) == 1
    assert all("sk-ant-api03-own-key" not in repr(r) for r in fake.requests())


def test_gemini_cli_through_the_proxy(gateway: ProxyProcess, fake: FakeCodexThread, tmp_path: Path) -> None:
    from tests.cli.test_gemini_cli import GEMINI  # the CLI pinned by the Gemini work

    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}}, "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False}, "general": {"disableAutoUpdate": True, "disableUpdateNag": True}}))
    (tmp_path / "work").mkdir()
    fake.script({"text": "Gemini CLI, through HTTPS_PROXY."})
    result = run_cli([str(GEMINI), "--skip-trust", "-m", "gemini-2.5-pro", "-p", "Say hello", "--output-format", "json"],
                     tmp_path / "work", cli_env(gateway, tmp_path, GEMINI_API_KEY="AIza-own-key"))
    assert result["response"] == "Gemini CLI, through HTTPS_PROXY."
    assert all("AIza-own-key" not in repr(r) for r in fake.requests())


def test_gemini_sdk_through_the_proxy(gateway: ProxyProcess, fake: FakeCodexThread) -> None:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="AIza-client-own-key", http_options=types.HttpOptions(httpx_client=gateway.https_client()))
    fake.script({"text": "Gemini, answered locally"})
    answer = client.models.generate_content(model="gpt-5.4", contents="hi")
    assert answer.text == "Gemini, answered locally"
    assert all("AIza-client-own-key" not in repr(r) for r in fake.requests())


def test_unknown_paths_on_intercepted_hosts_are_answered_not_forwarded(gateway: ProxyProcess, fake: FakeCodexThread) -> None:
    with gateway.https_client() as client:
        for url in ("https://api.openai.com/v1/assistants", "https://chatgpt.com/", "https://api.openai.com/auth/accounts",
                    "https://chatgpt.com/backend-api/wham/tasks/list"):
            response = client.get(url, headers={"Authorization": f"Bearer {CLIENT_KEY}"})
            assert response.status_code == 404, url
            assert response.json()["error"]["code"] == "not_found"
    assert fake.requests("/codex/responses") == []  # answered here, never forwarded


def test_codex_account_calls_are_answered_for_the_pool(gateway: ProxyProcess, fake: FakeCodexThread) -> None:
    """What Codex signed in with ChatGPT asks besides turns: which workspace to route to (its own
    account, on the host it already uses) and its limits (the pool's)."""
    with gateway.https_client() as client:
        headers = {"Authorization": f"Bearer {CLIENT_KEY}", "ChatGPT-Account-Id": "client-own"}
        check = client.get("https://chatgpt.com/backend-api/wham/accounts/check", headers=headers).json()
        usage = client.get("https://chatgpt.com/backend-api/wham/usage", headers=headers).json()
    assert check["default_account_id"] == "client-own" and check["account_ordering"] == ["client-own"]
    assert check["accounts"][0]["workspace_backend_origin"] == "https://chatgpt.com"
    assert check["accounts"][0]["account_routing_override"] == "NO_CONSTRAINT"
    assert usage["codex_proxy"]["pooled"] is True and usage["rate_limit"]["allowed"] is True
    # On the base URL (chatgpt_base_url): a caller on this machine, no key; no https origin to route to.
    local = httpx.get(gateway.origin + "/backend-api/wham/accounts/check", headers={"ChatGPT-Account-Id": "acct-x"}).json()
    assert local["default_account_id"] == "acct-x" and "workspace_backend_origin" not in local["accounts"][0]
    assert all(CLIENT_KEY not in repr(r) for r in fake.requests())


def test_codex_websocket_through_the_proxy(gateway: ProxyProcess, fake: FakeCodexThread) -> None:
    """Codex signed in with ChatGPT opens ``wss://chatgpt.com/backend-api/codex/responses`` first:
    the upgrade is answered here and the turns run on our pool, never forwarded."""
    from websockets.sync.client import connect

    fake.script({"text": "over the intercepted socket"})
    with connect("wss://chatgpt.com/backend-api/codex/responses", proxy=gateway.origin, ssl=gateway.tls_context(),
                 additional_headers={"Authorization": f"Bearer {CLIENT_KEY}", "OpenAI-Beta": "responses_websockets=2026-02-06"}) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "gpt-5.4", "input": "hi"}))
        events = []
        while not events or events[-1]["type"] != "response.completed":
            events.append(json.loads(ws.recv(timeout=30)))
    assert "".join(e.get("delta", "") for e in events if e["type"] == "response.output_text.delta") == "over the intercepted socket"
    (upstream,) = fake.requests("/codex/responses")
    assert CLIENT_KEY not in json.dumps(upstream["headers"])


def tunnel(proxy: ProxyProcess, port: int) -> socket.socket:
    """A CONNECT tunnel through the proxy to 127.0.0.1:<port>."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def test_other_https_hosts_are_tunnelled_with_their_own_certificate(gateway: ProxyProcess, tmp_path: Path) -> None:
    cert, key, der = self_signed_certificate(tmp_path)
    with https_server(cert, key) as server:
        # Verifying against the server's own certificate only works if mitmproxy did not decrypt.
        context = ssl.create_default_context(cafile=str(cert))
        with context.wrap_socket(tunnel(gateway, server.port), server_hostname="127.0.0.1") as tls:
            assert tls.getpeercert(binary_form=True) == der
            tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
        assert answer.endswith(HELLO)
        with httpx.Client(proxy=gateway.origin, verify=context, timeout=10) as client:
            assert client.get(f"https://127.0.0.1:{server.port}/").content == HELLO


def test_other_hosts_get_raw_tcp_untouched(gateway: ProxyProcess) -> None:
    payload = b"\x00\x01 not HTTP, not TLS \xff\r\n\r\n" * 50
    with echo_server() as server, tunnel(gateway, server.port) as sock:
        sock.sendall(payload)
        echoed = b""
        while len(echoed) < len(payload):
            chunk = sock.recv(65536)
            assert chunk, "tunnel closed early"
            echoed += chunk
        assert echoed == payload


def test_clients_from_other_machines_need_the_proxy_key(fake: FakeCodexThread, tmp_path: Path) -> None:
    """Listening on 0.0.0.0: a loopback client is trusted, a remote one must use the proxy key as its API key."""
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    proxy = ProxyProcess(tmp_path / "lan", proxy_config(fake), args=("--listen-host", "0.0.0.0")).start()
    try:
        with_one_account(proxy)
        fake.script({"text": "for the remote client"})

        def remote(api_key: str) -> openai.OpenAI:
            transport = httpx.HTTPTransport(local_address=address, proxy=httpx.Proxy(f"http://{address}:{proxy.port}"),
                                            verify=proxy.tls_context())
            return openai.OpenAI(api_key=api_key, http_client=httpx.Client(transport=transport, timeout=30), max_retries=0)

        with pytest.raises(openai.AuthenticationError):
            remote(CLIENT_KEY).chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
        assert fake.requests("/codex/responses") == []
        answer = remote(PROXY_KEY).chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "for the remote client"
    finally:
        proxy.stop()


def test_many_streams_at_once_over_one_http2_connection(gateway: ProxyProcess, fake: FakeCodexThread, tmp_path: Path) -> None:
    """HTTP/2 multiplexes a client's calls over one connection; each stream is answered on its own
    (mitmproxy limits connections per upstream address to five: none of the twelve may wait).
    curl is the client: it speaks HTTP/2 through a proxy tunnel, which httpx does not."""
    import time

    fake.configure(events=10, event_delay_ms=100)  # each stream takes about a second
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": "hi"}]}))
    url = "https://api.openai.com/v1/chat/completions"
    started = time.monotonic()
    done = subprocess.run(
        ["curl", "-sS", "--http2", "--parallel", "--parallel-max", "12", "--proxy", gateway.origin, "--cacert", str(gateway.ca_cert),
         "-H", f"Authorization: Bearer {CLIENT_KEY}", "-H", "Content-Type: application/json", "--data-binary", f"@{body}",
         "-w", "%{http_version} %{num_connects}\n", *[url] * 12],
        capture_output=True, text=True, timeout=30, check=True,
    )
    elapsed = time.monotonic() - started
    assert done.stdout.count("data: [DONE]") == 12
    versions = [line.split() for line in done.stdout.splitlines() if line.startswith(("2 ", "1.1 "))]
    assert len(versions) == 12 and all(version == "2" for version, _ in versions)
    assert sum(int(connects) for _, connects in versions) == 1  # one connection carried them all
    assert elapsed < 2.5, elapsed  # concurrently: about one stream's time, not twelve
