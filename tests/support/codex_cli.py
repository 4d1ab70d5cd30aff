"""The real Codex CLI (``@openai/codex``, pinned in tests/cli/codex/), run offline against a
:class:`~tests.support.fingerprint_server.FingerprintServer`, and the recordings of any client
summed up in the shape of core/upstream/codex_cli.json.

The CLI is signed in with ChatGPT tokens the fake backend minted, and both of its base URLs
(``chatgpt_base_url``, ``openai_base_url``) point at the recorder; it trusts the recorder's CA
through ``CODEX_CA_CERTIFICATE``. Anything it would send elsewhere goes to a proxy address where
nothing listens (``HTTPS_PROXY``, with the recorder's host in ``NO_PROXY``), so it never reaches
a real host.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from codex_fake import mint_access_token, mint_id_token
from tests.support.clienthello import ja4
from tests.support.fingerprint_server import FingerprintServer, Recorded, akamai
from tests.support.proxy import ROOT

CODEX = ROOT / "tests" / "cli" / "codex" / "node_modules" / ".bin" / "codex"
PACKAGE = ROOT / "tests" / "cli" / "codex" / "node_modules" / "@openai" / "codex" / "package.json"
DEAD_END = "http://127.0.0.1:9"  # the discard port: nothing listens there


def cli_version() -> str:
    return str(json.loads(PACKAGE.read_text())["version"])


def run_codex(server: FingerprintServer, home: Path, prompt: str, model: str = "gpt-5.4",
              account: str = "acc-1") -> subprocess.CompletedProcess[str]:
    """``codex exec`` once; returns the finished process (the answer is on stdout)."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    tokens = {"id_token": mint_id_token(account_id=account, plan="plus", email="cli@example.com"),
              "access_token": mint_access_token(account_id=account, plan="plus", email="cli@example.com"),
              "refresh_token": "rt_unused", "account_id": account}
    (codex_home / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": None, "tokens": tokens,
                                                      "last_refresh": "2099-01-01T00:00:00Z"}))
    (codex_home / "config.toml").write_text(
        f'chatgpt_base_url = "{server.origin}/backend-api/"\n'
        f'openai_base_url = "{server.origin}/backend-api/codex"\n'
        "check_for_update_on_startup = false\n"
        "[analytics]\nenabled = false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "CODEX", "HTTP", "NO_PROXY"))}
    env.update(HOME=str(home), CODEX_HOME=str(codex_home), CODEX_CA_CERTIFICATE=str(server.ca.ca_file),
               HTTPS_PROXY=DEAD_END, HTTP_PROXY=DEAD_END, NO_PROXY="localhost,127.0.0.1", RUST_LOG="warn", NO_COLOR="1")
    work = home / "work"
    work.mkdir(exist_ok=True)
    return subprocess.run([str(CODEX), "exec", "--skip-git-repo-check", "-s", "read-only", "-m", model, prompt],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120)


def _tls(recorded: Recorded) -> dict[str, Any]:
    """The ClientHello without what varies per connection (extension order) or per server (SNI)."""
    hello = dict(recorded.client_hello)
    for volatile in ("ja3", "ja3_hash", "server_name"):
        hello.pop(volatile)
    hello["extensions"] = sorted(hello["extensions"])
    return hello


def _request(connections: list[Recorded], path: str, method: str) -> tuple[Recorded, dict[str, Any]]:
    for connection in connections:
        for request in connection.requests:
            head = dict(request["headers"])
            line = request.get("request_line", "")
            if head.get(":method", line.split(" ")[0]) == method and path in head.get(":path", line):
                return connection, request
    raise AssertionError(f"no {method} {path} among {len(connections)} recorded connections")


def describe(connections: list[Recorded]) -> dict[str, Any]:
    """What identifies the client across its connections: HTTPS (``/codex/models``, ``/codex/responses``)
    and, when it tried one, its WebSocket."""
    models_conn, models = _request(connections, "/codex/models", "GET")
    responses_conn, responses = _request(connections, "/codex/responses", "POST")
    assert models_conn.client_hello and responses_conn.alpn == "h2", responses_conn.alpn
    frames = responses_conn.h2_frames
    pseudo = responses["pseudo"]
    http2 = {
        "settings": next(f["settings"] for f in frames if f["type"] == "SETTINGS"),
        "window_update": next(f["increment"] for f in frames if f["type"] == "WINDOW_UPDATE"),
        "priority_frames": [f for f in frames if f["type"] == "PRIORITY"],
        "headers_priority": "PRIORITY" in next(f["flags"] for f in frames if f["type"] == "HEADERS"),
        "pseudo_header_order": ",".join(name[1] for name in pseudo),
        "akamai": akamai(frames, pseudo),
    }
    values = dict(responses["headers"])
    described: dict[str, Any] = {
        "https": {
            "tls": _tls(responses_conn),
            "http2": http2,
            "accept_encoding": values.get("accept-encoding"),
            "content_encoding": values.get("content-encoding"),
            "headers": {
                "models": [k for k, _ in models["headers"] if not k.startswith(":")],
                "responses": [k for k, _ in responses["headers"] if not k.startswith(":")],
            },
        },
    }
    upgrades = [(c, r) for c in connections for r in c.requests if "request_line" in r
                and dict((k.lower(), v) for k, v in r["headers"]).get("upgrade", "").lower() == "websocket"]
    if upgrades:
        connection, request = upgrades[0]
        described["websocket"] = {"tls": _tls(connection), "headers": [k.lower() for k, _ in request["headers"]]}
    return json.loads(json.dumps(described))  # as the JSON reference holds it (tuples become lists)


def orders(connections: list[Recorded]) -> set[tuple[int, ...]]:
    """The distinct extension orders seen (rustls shuffles them per connection)."""
    return {tuple(c.client_hello["extensions"]) for c in connections}


def without_scsv(tls: dict[str, Any]) -> dict[str, Any]:
    """``tls`` as BoringSSL can send it: no TLS_EMPTY_RENEGOTIATION_INFO_SCSV cipher value (0x00ff),
    which BoringSSL has no way to emit (see core/upstream/fingerprint.py)."""
    ciphers = [c for c in tls["ciphers"] if c != 0x00FF]
    return {**tls, "ciphers": ciphers,
            "ja4": ja4(ciphers, tls["extensions"], tls["alpn"], tls["versions"], tls["signature_algorithms"],
                       sni=True)}
