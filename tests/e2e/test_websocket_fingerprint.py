"""The proxy's WebSocket upgrade presents the Codex CLI's WebSocket client, as recorded in
core/upstream/codex_cli.json: its ClientHello (the HTTPS one without ALPN) and its header set and
order. The recording TLS server refuses upgrades (426), so the turn also proves the SSE fallback
through a real TLS upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from codex_fake import FakeCodexThread, mint_access_token
from tests.conftest import proxy_config
from tests.support.codex_cli import describe, without_scsv
from tests.support.fingerprint_server import FingerprintServer, LocalCA
from tests.support.proxy import ROOT, ProxyProcess

REFERENCE = ROOT / "core" / "upstream" / "codex_cli.json"


@pytest.fixture
def recorder(fake_server: FakeCodexThread, tmp_path: Path) -> Iterator[FingerprintServer]:
    assert fake_server.base_url is not None
    server = FingerprintServer(LocalCA(tmp_path / "ca"), fake_server.base_url).start()
    yield server
    server.stop()


def test_the_upgrade_presents_the_cli_websocket_client(recorder: FingerprintServer, fake: FakeCodexThread, tmp_path: Path) -> None:
    config = proxy_config(fake, api={"base_url": recorder.origin + "/backend-api"}, tls={"ca_file": str(recorder.ca.ca_file)},
                          upstream={"transport": "websocket"})
    proxy = ProxyProcess(tmp_path / "proxy", config).start()
    try:
        proxy.add_account(mint_access_token(account_id="acc-1", plan="plus", email="one@example.com"))
        fake.script({"text": ["Over HTTP."]})
        client = OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=60)
        answer = client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "Over HTTP."  # upgrade refused: the turn went over SSE
        described = describe(list(recorder.connections))
    finally:
        proxy.stop()
    reference = json.loads(REFERENCE.read_text())["websocket"]
    assert described["websocket"]["tls"] == without_scsv(reference["tls"])
    # The CLI's header set and order, but for what libcurl decides: it writes Connection last on
    # every HTTP/1.1 request, and offers no compression (no sec-websocket-extensions: the CLI
    # offers permessage-deflate). x-codex-beta-features is forwarded when the proxy's own client
    # sends one (as over HTTP).
    expected = [h for h in reference["headers"] if h not in ("connection", "sec-websocket-extensions", "x-codex-beta-features")]
    assert described["websocket"]["headers"] == [*expected, "connection"]
