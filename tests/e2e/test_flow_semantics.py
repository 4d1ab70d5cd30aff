"""Every API call is a real mitmproxy flow: other addons see and change it before it is translated,
mitmweb can hold it, edit it and kill it, mitmdump prints it, mitmweb shows it while it streams."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from codex_fake import FakeCodexThread
from tests.conftest import PROXY_KEY, proxy_config, with_one_account
from tests.support.mitmweb import MitmWeb, eventually, mitmweb_args
from tests.support.proxy import ProxyProcess

# A user's own addon: rewrites the prompt before the gateway translates it and notes what answer it saw.
USER_ADDON = '''
import json, pathlib
from mitmproxy import http

SEEN = pathlib.Path(__file__).with_suffix(".seen")

def request(flow: http.HTTPFlow) -> None:
    if flow.request.path == "/v1/chat/completions":
        body = json.loads(flow.request.content)
        body["messages"][-1]["content"] = "rewritten by the user's addon"
        flow.request.content = json.dumps(body).encode()

def response(flow: http.HTTPFlow) -> None:
    if flow.request.path == "/v1/chat/completions":
        with SEEN.open("a") as seen:
            seen.write(f"{flow.response.status_code} {flow.response.get_text()}\\n")
'''


@pytest.fixture
def start(fake: FakeCodexThread, tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    started: list[ProxyProcess] = []

    def launch(tool: str = "mitmdump", *args: str, before: tuple[str, ...] = (), verbosity: str = "warn") -> ProxyProcess:
        extra = mitmweb_args(*args) if tool == "mitmweb" else args
        proxy = ProxyProcess(tmp_path / f"p{len(started)}", proxy_config(fake), tool=tool, args=extra, before=before,
                             verbosity="info" if tool == "mitmweb" else verbosity).start()
        started.append(proxy)
        return with_one_account(proxy)

    yield launch
    for proxy in started:
        proxy.stop()


def chat(proxy: ProxyProcess, text: str, **kwargs: Any) -> str:
    client = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0, **kwargs)
    answer = client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": text}])
    return answer.choices[0].message.content or ""


def last_input(fake: FakeCodexThread) -> str:
    body = orjson.loads(fake.requests("/codex/responses")[-1]["raw"])
    return body["input"][-1]["content"][0]["text"]


@pytest.mark.parametrize("position", ["before", "after"])
def test_a_users_addon_changes_the_call_before_translation_and_sees_the_answer(
        start: Callable[..., ProxyProcess], fake: FakeCodexThread, tmp_path: Path, position: str) -> None:
    script = tmp_path / "mine.py"
    script.write_text(USER_ADDON)
    if position == "before":
        proxy = start(before=("-s", str(script)))
    else:
        proxy = start("mitmdump", "-s", str(script))
    assert chat(proxy, "original prompt") == "You said: rewritten by the user's addon"
    assert last_input(fake) == "rewritten by the user's addon"
    seen = eventually(lambda: script.with_suffix(".seen").exists() and script.with_suffix(".seen").read_text())
    assert seen.startswith("200 ") and "You said: rewritten by the user's addon" in seen


def test_mitmproxys_own_addons_apply_to_base_url_calls(start: Callable[..., ProxyProcess], fake: FakeCodexThread) -> None:
    """modify_headers supplies the key the client lacks; block_list answers a path before it goes anywhere."""
    proxy = start("mitmdump", "--set", f"modify_headers=|~u chat/completions|Authorization|Bearer {PROXY_KEY}",
                  "--set", "block_list=/~u responses/418")
    no_key = openai.OpenAI(base_url=proxy.base_url, api_key="not-the-key", max_retries=0)
    answer = no_key.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "keyed by an addon"}])
    assert answer.choices[0].message.content == "You said: keyed by an addon"
    before = len(fake.requests("/codex/responses"))
    blocked = httpx.post(proxy.base_url + "/responses", json={"model": "gpt-5.4", "input": "x"},
                         headers={"Authorization": f"Bearer {PROXY_KEY}"})
    assert blocked.status_code == 418
    assert len(fake.requests("/codex/responses")) == before  # never reached the gateway, nor the backend


def test_mitmdump_prints_one_line_per_call(start: Callable[..., ProxyProcess]) -> None:
    proxy = start()
    for n in range(3):
        chat(proxy, f"line {n}")
    log = eventually(lambda: proxy.log().count("<< 200 OK") >= 3 and proxy.log())
    assert log.count(f"POST http://127.0.0.1:{proxy.port}/v1/chat/completions") == 3
    assert PROXY_KEY not in log


def _in_background(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # the test reads it
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _turn(web: MitmWeb, path: str = "/v1/chat/completions") -> Callable[[], dict[str, Any] | None]:
    return lambda: next((f for f in web.flows() if f["request"]["path"] == path), None)


def test_an_intercepted_call_waits_and_the_edited_turn_is_sent(start: Callable[..., ProxyProcess], fake: FakeCodexThread) -> None:
    proxy = start("mitmweb", "--set", "intercept=~q & ~u /v1/chat/completions", "--set", "intercept_active=true")
    web = MitmWeb(proxy)
    before = len(fake.requests("/codex/responses"))
    thread, outcome = _in_background(lambda: chat(proxy, "as the client wrote it", timeout=60))
    held = eventually(lambda: (flow := _turn(web)()) is not None and flow["intercepted"] and flow)
    time.sleep(0.5)
    assert len(fake.requests("/codex/responses")) == before  # nothing went upstream while it is held
    body = orjson.loads(web.content(held, "request"))
    body["messages"][-1]["content"] = "as edited in mitmweb"
    assert web.command("PUT", f"/flows/{held['id']}", json={"request": {"content": orjson.dumps(body).decode()}}).status_code == 200
    assert web.command("POST", f"/flows/{held['id']}/resume").status_code == 200
    thread.join(30)
    assert outcome == ["You said: as edited in mitmweb"]
    assert last_input(fake) == "as edited in mitmweb"


def test_mitmweb_shows_a_stream_in_progress_and_kill_aborts_it_upstream(start: Callable[..., ProxyProcess],
                                                                       fake: FakeCodexThread) -> None:
    proxy = start("mitmweb")
    web = MitmWeb(proxy)
    fake.configure(events=100, event_delay_ms=100)  # a 10 s answer
    aborted = fake.stats()["aborted_streams"]

    def stream() -> int:
        client = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0, timeout=30)
        chunks = 0
        for _ in client.chat.completions.create(model="gpt-5.4", stream=True, messages=[{"role": "user", "content": "long"}]):
            chunks += 1
        return chunks

    thread, outcome = _in_background(stream)
    live = eventually(lambda: (flow := _turn(web)()) is not None and flow.get("response") and flow)
    assert live["response"]["status_code"] == 200 and live["response"]["timestamp_end"] is None  # shown while it streams
    started = time.monotonic()
    assert web.command("POST", f"/flows/{live['id']}/kill").status_code == 200
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert isinstance(outcome[0], Exception) or outcome[0] < 100  # the client lost the rest of the stream
    eventually(lambda: fake.stats()["aborted_streams"] > aborted, timeout=5)  # the backend's generation was stopped
    killed = eventually(lambda: (flow := _turn(web)()) is not None and flow.get("error") and flow)
    assert "killed" in killed["error"]["msg"].lower()


def test_a_killed_intercepted_call_never_goes_upstream(start: Callable[..., ProxyProcess], fake: FakeCodexThread) -> None:
    proxy = start("mitmweb", "--set", "intercept=~q & ~u /v1/chat/completions", "--set", "intercept_active=true")
    web = MitmWeb(proxy)
    before = len(fake.requests("/codex/responses"))
    thread, outcome = _in_background(lambda: chat(proxy, "never sent", timeout=30))
    held = eventually(lambda: (flow := _turn(web)()) is not None and flow["intercepted"] and flow)
    assert web.command("POST", f"/flows/{held['id']}/kill").status_code == 200
    thread.join(10)
    assert isinstance(outcome[0], Exception)
    assert len(fake.requests("/codex/responses")) == before
