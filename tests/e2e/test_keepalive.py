"""A model that thinks silently for long must not get its stream cut by a proxy or tunnel on the way:
every protocol's stream goes out unbuffered (``X-Accel-Buffering: no``) and carries that protocol's
harmless keep-alive every ``stream.keepalive_seconds`` of silence (15 s by default; short here)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from codex_fake import FakeCodexThread
from tests.conftest import proxy_config, with_one_account
from tests.support.proxy import ProxyProcess
from tests.support.servers import free_port

SILENCE_MS = 1500
STREAM = {"keepalive_seconds": 0.25, "commit_after_seconds": 0.2}


@pytest.fixture(scope="module")
def patient_proxy(fake_server: FakeCodexThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = proxy_config(fake_server, stream=STREAM, ollama={"enabled": True, "port": free_port()})
    proxy = ProxyProcess(tmp_path_factory.mktemp("patient"), config, verbosity="info").start()  # info: mitmproxy logs WebSocket pings
    yield proxy
    proxy.stop()


@pytest.fixture
def patient(patient_proxy: ProxyProcess, fake: FakeCodexThread) -> ProxyProcess:
    return with_one_account(patient_proxy)


def silent_then(fake: FakeCodexThread, text: str) -> None:
    fake.script({"ttft_ms": SILENCE_MS, "text": text})


def stream(url: str, body: dict[str, object], headers: dict[str, str]) -> tuple[httpx.Headers, bytes]:
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as answer:
        assert answer.status_code == 200, answer.read()
        return answer.headers, b"".join(answer.iter_raw())


@pytest.mark.parametrize(("path", "body", "keepalive", "answer"), [
    ("/v1/chat/completions", {"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": "hi"}]}, b": ping\n\n", b'"content":"thought'),
    ("/v1/completions", {"model": "gpt-5.4", "stream": True, "prompt": "hi"}, b": ping\n\n", b'"text":"thought'),
    ("/v1/responses", {"model": "gpt-5.4", "stream": True, "input": "hi"}, b": ping\n\n", b'"delta":"thought'),
    ("/v1/messages", {"model": "claude-sonnet-4-6", "stream": True, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]},
     b"event: ping\n", b'"text":"thought'),
    ("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", {"contents": [{"parts": [{"text": "hi"}]}]}, b"\r\n", b'"text":"thought'),
])  # fmt: skip
def test_every_sse_protocol_keeps_a_silent_stream_alive(patient: ProxyProcess, fake: FakeCodexThread, path: str, body: dict[str, object],
                                                         keepalive: bytes, answer: bytes) -> None:
    silent_then(fake, "thought long")
    headers = {"Authorization": f"Bearer {patient.key}", "x-api-key": patient.key}
    response_headers, raw = stream(patient.origin + path, body, headers)
    assert response_headers["x-accel-buffering"] == "no"
    before = raw[: raw.index(answer)]
    assert before.count(keepalive) >= 3, raw[:600]  # 1.5 s of silence, a keep-alive every 0.25 s


def test_ollama_keeps_a_silent_stream_alive(patient: ProxyProcess, fake: FakeCodexThread) -> None:
    silent_then(fake, "thought long")
    response_headers, raw = stream(patient.ollama_origin + "/api/chat", {"model": "gpt-5.4", "messages": [{"role": "user", "content": "hi"}]}, {})
    assert response_headers["x-accel-buffering"] == "no"
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if line["message"]["content"])
    assert first >= 3 and all(line["done"] is False and line["message"]["content"] == "" for line in lines[:first])


def test_a_silent_socket_turn_is_pinged(patient: ProxyProcess, fake: FakeCodexThread) -> None:
    silent_then(fake, "thought long")
    pings_before = patient.log().count("Received WebSocket ping from server")
    with connect(patient.origin.replace("http", "ws") + "/v1/responses", additional_headers={"Authorization": f"Bearer {patient.key}"}) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "gpt-5.4", "input": "hi"}))
        events = []
        while not events or events[-1]["type"] != "response.completed":
            events.append(json.loads(ws.recv(timeout=30)))
    # mitmproxy's WebSocket layer relays (and logs) each ping the gateway sends while the model is silent.
    assert patient.log().count("Received WebSocket ping from server") - pings_before >= 3
