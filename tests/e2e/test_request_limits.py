"""Large bodies: real agent turns (long histories, several images) are accepted up to
``server.max_body_size`` (64 MiB by default); a larger one is refused with 413 in the caller's
own error format, without the body ever being held whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from codex_fake import FakeCodexThread
from tests.conftest import PROXY_KEY, proxy_config, with_one_account
from tests.support.proxy import ProxyProcess


@pytest.fixture(scope="module")
def small_limit(fake_server: FakeCodexThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(tmp_path_factory.mktemp("limits"), proxy_config(fake_server, server={"max_body_size": "2m"})).start()
    yield proxy
    proxy.stop()


def test_a_long_turn_well_over_a_mebibyte_is_served(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    history = [{"role": "user" if n % 2 == 0 else "assistant", "content": f"turn {n} " + "x" * 50_000} for n in range(100)]
    history.append({"role": "user", "content": "and now?"})  # about 5 MB in all
    client = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0, timeout=60)
    answer = client.chat.completions.create(model="gpt-5.4", messages=history)
    assert answer.choices[0].message.content == "You said: and now?"
    assert len(fake.requests("/codex/responses")[-1]["raw"]) > 5_000_000


def test_over_the_limit_is_413_in_each_protocols_envelope(small_limit: ProxyProcess, fake: FakeCodexThread) -> None:
    proxy = with_one_account(small_limit)
    big = "x" * (3 * 1024 * 1024)
    before = len(fake.requests("/codex/responses"))

    with pytest.raises(openai.APIStatusError) as chat:
        openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0).chat.completions.create(
            model="gpt-5.4", messages=[{"role": "user", "content": big}])
    assert chat.value.status_code == 413
    assert chat.value.body["code"] == "request_too_large" and "server.max_body_size" in chat.value.body["message"]

    with pytest.raises(anthropic.APIStatusError) as messages:
        anthropic.Anthropic(base_url=proxy.origin, api_key=PROXY_KEY, max_retries=0).messages.create(
            model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": big}])
    assert messages.value.status_code == 413 and messages.value.body["type"] == "error"
    assert messages.value.body["error"]["type"] == "request_too_large"

    gemini = httpx.post(f"{proxy.origin}/v1beta/models/gpt-5.4:generateContent", headers={"x-goog-api-key": PROXY_KEY},
                        json={"contents": [{"parts": [{"text": big}]}]}, timeout=30)
    assert gemini.status_code == 413 and gemini.json()["error"]["code"] == 413

    assert len(fake.requests("/codex/responses")) == before


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_declared_length_over_the_limit_is_refused_without_holding_it(small_limit: ProxyProcess) -> None:
    assert small_limit.process is not None
    peak_before = peak_rss_mb(small_limit.process.pid)

    def body() -> Iterator[bytes]:
        for _ in range(64):  # 64 MiB streamed in: the answer must not wait for all of it to be held
            yield b"x" * (1024 * 1024)

    response = httpx.post(f"{small_limit.base_url}/responses", content=body(), timeout=60,
                          headers={"Authorization": f"Bearer {PROXY_KEY}", "Content-Type": "application/json",
                                   "Content-Length": str(64 * 1024 * 1024)})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert peak_rss_mb(small_limit.process.pid) - peak_before < 32  # streamed past, never held whole


def test_a_chunked_body_over_the_limit_is_refused_without_holding_it(small_limit: ProxyProcess) -> None:
    """No length to judge by up front: the body is read to its end and dropped once it passes the
    limit, the answer is the same 413, and the connection serves the next call."""
    assert small_limit.process is not None
    peak_before = peak_rss_mb(small_limit.process.pid)

    def body() -> Iterator[bytes]:
        for _ in range(64):  # 64 MiB in chunks, no Content-Length
            yield b"x" * (1024 * 1024)

    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {PROXY_KEY}"}) as client:
        response = client.post(f"{small_limit.base_url}/responses", content=body(), headers={"Content-Type": "application/json"})
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
        assert "bytes" in response.json()["error"]["message"]
        assert client.get(f"{small_limit.origin}/health").status_code == 200  # the same keep-alive connection
    assert peak_rss_mb(small_limit.process.pid) - peak_before < 32
