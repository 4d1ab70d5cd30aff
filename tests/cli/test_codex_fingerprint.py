"""The real Codex CLI and this proxy, side by side, against the same recording TLS server: the
proxy's upstream calls must present the CLI's fingerprint (ClientHello, HTTP/2 preface, header
set and order).

The CLI (``@openai/codex``, pinned in tests/cli/codex/) runs offline: its base URLs point at the
recorder (tests/support/fingerprint_server.py), which forwards to the fake backend so the turn
completes. What it presented is compared with the committed reference, core/upstream/codex_cli.json
(from which the proxy's profile is built); after bumping the pinned CLI, re-record it with
``CODEX_FINGERPRINT_RECORD=1 pytest tests/cli/test_codex_fingerprint.py``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from codex_fake import FakeCodexThread, mint_access_token
from tests.conftest import proxy_config
from tests.support.codex_cli import CODEX, cli_version, describe, orders, run_codex, without_scsv
from tests.support.fingerprint_server import FingerprintServer, LocalCA
from tests.support.proxy import ROOT, ProxyProcess

REFERENCE = ROOT / "core" / "upstream" / "codex_cli.json"
RECORD = os.environ.get("CODEX_FINGERPRINT_RECORD") == "1"

pytestmark = pytest.mark.skipif(not CODEX.exists(), reason="the Codex CLI is installed by `make test` (npm ci)")


@pytest.fixture(scope="module")
def recorder(fake_server: FakeCodexThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FingerprintServer]:
    assert fake_server.base_url is not None
    server = FingerprintServer(LocalCA(tmp_path_factory.mktemp("ca")), fake_server.base_url).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cli(recorder: FingerprintServer, fake_server: FakeCodexThread, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``codex exec`` turn, as the recorder saw it."""
    fake_server.reset()
    recorder.clear()
    fake_server.script({"text": ["Hello ", "from the fake."]})
    result = run_codex(recorder, tmp_path_factory.mktemp("codex-home"), "Say hello")
    assert result.returncode == 0, f"codex exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert "Hello from the fake." in result.stdout
    connections = list(recorder.connections)
    described = describe(connections)
    described["extension_orders"] = len(orders(connections))
    described["connections"] = len(connections)
    if RECORD:
        reference = {"client": "Codex CLI (npm @openai/codex), codex exec, linux x64", "cli_version": cli_version(),
                     "https": described["https"], "websocket": described["websocket"]}
        REFERENCE.write_text(json.dumps(reference, indent=2) + "\n")
    return described


@pytest.fixture(scope="module")
def ours(recorder: FingerprintServer, fake_server: FakeCodexThread, cli: dict[str, Any],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The proxy (a real mitmdump) with its backend behind the same recorder: the account's model
    list, then one turn."""
    fake_server.reset()
    recorder.clear()
    config = proxy_config(fake_server, api={"base_url": recorder.origin + "/backend-api"},
                          tls={"ca_file": str(recorder.ca.ca_file)})
    proxy = ProxyProcess(tmp_path_factory.mktemp("proxy"), config).start()
    try:
        proxy.add_account(mint_access_token(account_id="acc-1", plan="plus", email="one@example.com"))
        recorder.wait_for(lambda c: any("/codex/models" in dict(r["headers"]).get(":path", "") for r in c.requests))
        fake_server.script({"text": ["Hi."]})
        from openai import OpenAI

        client = OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=60)
        answer = client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "Hi."
        yield describe(list(recorder.connections))
    finally:
        proxy.stop()


def test_the_cli_matches_its_recorded_reference(cli: dict[str, Any]) -> None:
    """The pinned CLI still presents what core/upstream/codex_cli.json says (a new CLI version
    that changed its handshake fails here until re-recorded)."""
    reference = json.loads(REFERENCE.read_text())
    assert reference["cli_version"] == cli_version()
    assert cli["https"] == reference["https"]
    assert cli["websocket"] == reference["websocket"]
    # rustls shuffles the extensions of every ClientHello: one order per connection.
    assert cli["extension_orders"] == cli["connections"] > 2


def test_the_proxy_presents_the_cli_fingerprint(cli: dict[str, Any], ours: dict[str, Any]) -> None:
    theirs, mine = cli["https"], ours["https"]
    # TLS: everything but the one value BoringSSL cannot send (the renegotiation SCSV, 0x00ff).
    assert 0x00FF in theirs["tls"]["ciphers"]
    assert mine["tls"] == without_scsv(theirs["tls"])
    assert mine["tls"]["grease"] is False and 21 not in mine["tls"]["extensions"]  # no GREASE, no padding
    # HTTP/2: SETTINGS (order and values), WINDOW_UPDATE, no PRIORITY, pseudo-header order.
    assert mine["http2"] == theirs["http2"]
    assert mine["http2"]["akamai"] == "2:0;4:2097152;5:16384;6:16384|5177345|0|m,s,a,p"
    # Headers: the same set in the same order. The CLI also sends x-codex-beta-features, which
    # the proxy forwards when its own client sends one.
    assert mine["headers"]["models"] == theirs["headers"]["models"]
    assert mine["headers"]["responses"] == [h for h in theirs["headers"]["responses"] if h != "x-codex-beta-features"]
    assert mine["accept_encoding"] == theirs["accept_encoding"] == "zstd,gzip"
    assert mine["content_encoding"] == theirs["content_encoding"] == "zstd"


def test_header_values_have_the_cli_shape(recorder: FingerprintServer, ours: dict[str, Any]) -> None:
    reference = json.loads(REFERENCE.read_text())
    sent = {}
    for connection in recorder.connections:
        for request in connection.requests:
            head = dict(request["headers"])
            if head.get(":path", "").endswith("/codex/responses"):
                sent = head
    assert sent["version"] == reference["cli_version"]  # client.app_version's default is the pinned CLI
    assert re.fullmatch(r"codex_cli_rs/\d+\.\d+\.\d+ \([^;()]+; [^;()]+\) \S+", sent["user-agent"]), sent["user-agent"]
    assert sent["user-agent"].startswith(f"codex_cli_rs/{sent['version']} ")
    assert sent["session-id"] == sent["thread-id"] == sent["x-client-request-id"]
    assert sent["x-codex-window-id"] == sent["session-id"] + ":0"
    metadata = json.loads(sent["x-codex-turn-metadata"])
    assert metadata["session_id"] == sent["session-id"] and re.fullmatch(r"[0-9a-f-]{36}", metadata["installation_id"])
    assert sent["x-codex-routing-hint"] == "model=gpt-5.4"


def test_the_websocket_reference_is_kept_for_the_websocket_transport() -> None:
    """The CLI's WebSocket connection: the same TLS without ALPN (HTTP/1.1 upgrade)."""
    reference = json.loads(REFERENCE.read_text())
    ws, https = reference["websocket"]["tls"], reference["https"]["tls"]
    assert ws["alpn"] == [] and 16 not in ws["extensions"]
    assert {k: v for k, v in ws.items() if k not in ("alpn", "extensions", "ja4")} == \
        {k: v for k, v in https.items() if k not in ("alpn", "extensions", "ja4")}
    assert reference["websocket"]["headers"][:4] == ["host", "connection", "upgrade", "sec-websocket-version"]

