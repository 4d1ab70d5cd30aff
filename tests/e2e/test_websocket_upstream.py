"""Turns over the backend's WebSocket, end to end: the official SDKs → a real mitmdump with the
addon → the fake backend's WebSocket (upstream.transport: websocket or auto). Socket reuse, the
SSE fallback, previous_response_id chains (on their socket, or replayed from history when it
died), rate-limit events, failover before the first byte, per-account cookies across a restart,
and the serving account's x-codex-* headers on every protocol's answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from codex_fake import FakeCodexThread
from codex_fake import faults as sc
from tests.conftest import proxy_config
from tests.support.accounts import account, add, chat, wait_for
from tests.support.proxy import ProxyProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def ws_proxy(fake_server: FakeCodexThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(tmp_path_factory.mktemp("ws-proxy"), proxy_config(fake_server, upstream={"transport": "websocket"}))
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(ws_proxy: ProxyProcess, fake: FakeCodexThread) -> ProxyProcess:
    """The WebSocket proxy with no account; each test adds its own."""
    ws_proxy.remove_all_accounts()
    assert ws_proxy.api("POST", "/admin/rotation-settings", json={"rotation_strategy": "round_robin",
                        "session_affinity": True, "plan_routing": True}).status_code == 200  # fmt: skip
    return ws_proxy


def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30)


def frames(fake: FakeCodexThread) -> list[dict[str, Any]]:
    """The response.create frames the fake got, oldest first."""
    return [r for r in fake.requests("/codex/responses") if r["method"] == "WS"]


def upgrades(fake: FakeCodexThread) -> list[dict[str, Any]]:
    return [r for r in fake.requests("/codex/responses") if r["method"] == "GET"]


def posts(fake: FakeCodexThread) -> list[dict[str, Any]]:
    return [r for r in fake.requests("/codex/responses") if r["method"] == "POST"]


def cookies_of(record: dict[str, Any]) -> dict[str, str]:
    header = record["headers"].get("cookie") or ""
    return dict(part.strip().split("=", 1) for part in header.split(";") if "=" in part)


# --- turns over a socket ------------------------------------------------------------------------------


def test_turns_go_over_one_reused_socket(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    add(proxy, "acc-ws1")
    sdk = client(proxy)
    assert chat(sdk, "one") == "You said: one"
    streamed = sdk.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "two"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "You said: two"
    answer = sdk.responses.create(model="gpt-5.4", input="three")
    assert answer.output_text == "You said: three"
    with sdk.responses.stream(model="gpt-5.4", input="four") as stream:
        kinds = [event.type for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "codex.rate_limits" not in kinds  # the socket's own events stay with the proxy

    assert [f["body"]["input"][-1]["content"][0]["text"] for f in frames(fake)] == ["one", "two", "three", "four"]
    assert all(f["body"]["type"] == "response.create" and f["account"] == "acc-ws1" for f in frames(fake))
    assert posts(fake) == []
    [upgrade] = upgrades(fake)  # four turns, one handshake
    assert upgrade["headers"]["openai-beta"] == "responses_websockets=2026-02-06"
    assert "content-type" not in upgrade["headers"] and upgrade["headers"]["chatgpt-account-id"] == "acc-ws1"
    rows = proxy.request_log("request_id is not null order by id desc limit 4")
    assert {r["status"] for r in rows} == {200}


def test_concurrent_turns_get_a_socket_each(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    import concurrent.futures

    add(proxy, "acc-ws2")
    fake.configure(event_delay_ms=20)
    sdk = client(proxy)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda i: chat(sdk, f"parallel {i}"), range(3)))
    assert answers == [f"You said: parallel {i}" for i in range(3)]
    assert len(upgrades(fake)) == 3  # one response in flight per socket
    fake.configure(event_delay_ms=0)
    before = len(upgrades(fake))
    for i in range(3):
        chat(sdk, f"after {i}")
    assert len(upgrades(fake)) == before  # the idle ones are reused


def test_sse_fallback_when_the_upgrade_is_refused(start_proxy: Any, fake: FakeCodexThread) -> None:
    proxy = start_proxy(upstream={"transport": "auto"})
    add(proxy, "acc-fallback")
    fake.configure(websocket_refusal=426)
    sdk = client(proxy)
    assert chat(sdk, "over sse") == "You said: over sse"
    assert chat(sdk, "still sse") == "You said: still sse"
    assert len(upgrades(fake)) == 1  # refused once: SSE only for a while, no handshake per turn
    assert [p["body"]["input"][-1]["content"][0]["text"] for p in posts(fake)] == ["over sse", "still sse"]
    assert frames(fake) == []


def test_auto_follows_the_catalog(start_proxy: Any, fake: FakeCodexThread) -> None:
    proxy = start_proxy(upstream={"transport": "auto"})
    add(proxy, "acc-auto")
    assert chat(client(proxy), "auto") == "You said: auto"  # the catalog marks gpt-5.4 prefer_websockets
    assert len(frames(fake)) == 1 and posts(fake) == []


# --- previous_response_id ---------------------------------------------------------------------------------


def test_previous_response_id_stays_on_the_socket_that_holds_it(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    add(proxy, "acc-chain")
    add(proxy, "acc-other")  # round robin would alternate: the chain must stay on its account
    sdk = client(proxy)
    fake.script({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "call_1"}]}, {"text": "18C in Paris"})
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    first = sdk.responses.create(model="gpt-5.4", input="Weather in Paris?", tools=tools)
    call = next(item for item in first.output if item.type == "function_call")
    second = sdk.responses.create(model="gpt-5.4", previous_response_id=first.id, tools=tools,
                                  input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18"}])
    assert second.output_text == "18C in Paris"
    third = sdk.responses.create(model="gpt-5.4", previous_response_id=second.id, input="And tomorrow?")
    assert third.output_text == "You said: And tomorrow?"

    sent = frames(fake)
    assert [f["account"] for f in sent] == ["acc-chain"] * 3
    assert sent[1]["body"]["previous_response_id"] == first.id and sent[2]["body"]["previous_response_id"] == second.id
    assert sent[1]["body"]["input"] == [{"type": "function_call_output", "call_id": call.call_id, "output": "18"}]  # only what is new
    assert len(upgrades(fake)) == 1  # the same socket


def test_a_chain_whose_socket_died_is_replayed_from_history(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    add(proxy, "acc-died")
    sdk = client(proxy)
    first = sdk.responses.create(model="gpt-5.4", input="remember the number 7")
    assert fake.drop_websockets("acc-died") == 1
    time.sleep(0.2)
    second = sdk.responses.create(model="gpt-5.4", previous_response_id=first.id, input="what was it?")
    assert second.output_text == "You said: what was it?"
    replayed = frames(fake)[-1]["body"]
    assert "previous_response_id" not in replayed  # a new socket cannot resolve it: the history is sent instead
    texts = [item.get("content") for item in replayed["input"]]
    assert replayed["input"][0]["content"][0]["text"] == "remember the number 7"
    assert replayed["input"][1]["type"] == "message" and replayed["input"][1]["role"] == "assistant"
    assert replayed["input"][-1]["content"][0]["text"] == "what was it?", texts
    assert len(upgrades(fake)) == 2


def test_a_chain_the_proxy_does_not_know_fails_clearly(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    add(proxy, "acc-unknown")
    with pytest.raises(openai.BadRequestError) as raised:
        client(proxy).responses.create(model="gpt-5.4", input="x", previous_response_id="resp_never_seen")
    assert raised.value.code == "previous_response_not_found"
    assert "resp_never_seen" in raised.value.message and "full conversation" in raised.value.message
    assert frames(fake) == []


def test_store_false_leaves_no_chain(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    add(proxy, "acc-nostore")
    sdk = client(proxy)
    first = sdk.responses.create(model="gpt-5.4", input="not kept", store=False)
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(model="gpt-5.4", input="x", previous_response_id=first.id)


# --- quota, failover ------------------------------------------------------------------------------------


def test_rate_limit_events_update_the_accounts_quota(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    add(proxy, "acc-quota")
    sdk = client(proxy)
    fake.set_usage("acc-quota", primary_used=10.0, secondary_used=5.0)
    chat(sdk, "first")
    fake.set_usage("acc-quota", primary_used=42.5, secondary_used=7.0)
    chat(sdk, "second")  # same socket: no new handshake, only the turn's codex.rate_limits event says so
    assert len(upgrades(fake)) == 1
    quota = wait_for(lambda: (q := account(proxy, "acc-quota", quota=True)["quota"]) and q["primary"]["used_percent"] == 42.5 and q,
                     what="the quota from the rate-limit event")  # fmt: skip
    assert quota["secondary"]["used_percent"] == 7.0 and quota["primary"]["window_minutes"] == 300


@pytest.mark.parametrize("fault", [sc.overloaded_503(), sc.error_event(code="server_is_overloaded", message="Overloaded")],
                         ids=["error-frame-503", "error-event"])
def test_overload_before_the_first_byte_fails_over(proxy: ProxyProcess, fake: FakeCodexThread, fault: dict[str, Any]) -> None:
    add(proxy, "acc-busy")
    add(proxy, "acc-free")
    fake.fault("acc-busy", fault)
    sdk = client(proxy)
    for i in range(2):
        assert chat(sdk, f"overload {i}") == f"You said: overload {i}"
    served = [f["account"] for f in frames(fake)]
    assert served.count("acc-free") == 2 and set(served) <= {"acc-busy", "acc-free"}
    assert account(proxy, "acc-busy")["status"] == "active"  # an overloaded backend is not the account's fault


def test_a_5xx_frame_is_retried_like_an_http_5xx(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    add(proxy, "acc-flaky")
    fake.fault("acc-flaky", sc.server_error_500(), times=1)
    assert chat(client(proxy), "again") == "You said: again"
    assert [f["account"] for f in frames(fake)] == ["acc-flaky", "acc-flaky"]  # the same account, a second time
    assert len(upgrades(fake)) == 2  # the socket that failed is not reused


def test_usage_limit_frame_fails_over_and_benches_the_account(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    add(proxy, "acc-spent")
    add(proxy, "acc-fresh")
    fake.fault("acc-spent", sc.usage_limit_429(resets_in=900))
    sdk = client(proxy)
    assert chat(sdk, "a") == "You said: a" and chat(sdk, "b") == "You said: b"
    assert account(proxy, "acc-spent")["status"] == "rate_limited"


# --- cookies ---------------------------------------------------------------------------------------------


def test_cookies_are_kept_per_account_across_a_restart(fake: FakeCodexThread, tmp_path: Path) -> None:
    fake.configure(set_cookies=True)
    config = proxy_config(fake, upstream={"transport": "websocket"}, auth={"rotation_strategy": "round_robin"})
    first = ProxyProcess(tmp_path / "proxy", config).start()
    try:
        add(first, "acc-jar1")
        add(first, "acc-jar2")
        sdk = client(first)
        for i in range(2):
            chat(sdk, f"before {i}")
    finally:
        first.stop()
    handshakes = upgrades(fake)
    assert [(h["account"], h["headers"].get("cookie")) for h in handshakes] == [("acc-jar1", None), ("acc-jar2", None)]

    second = ProxyProcess(tmp_path / "proxy", config).start()  # same data folder
    try:
        sdk = client(second)
        for i in range(2):
            chat(sdk, f"after {i}")
        chat(sdk, "usage")
    finally:
        second.stop()
    after = upgrades(fake)[2:]
    assert sorted(h["account"] for h in after) == ["acc-jar1", "acc-jar2"]
    jars = {h["account"]: cookies_of(h) for h in after}
    for name, other in (("acc-jar1", "acc-jar2"), ("acc-jar2", "acc-jar1")):
        assert set(jars[name]) == {"__cf_bm", "cf_clearance"}
        assert jars[name]["cf_clearance"] == f"clear-{name}"  # its own, kept over the restart
        assert jars[name]["__cf_bm"] != jars[other]["__cf_bm"]
    for record in fake.requests():
        if record["account"] is not None and (cookie := record["headers"].get("cookie")):
            assert f"clear-{record['account']}" in cookie and cookie.count("cf_clearance") == 1  # never another's


# --- headers the client sees --------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_the_serving_accounts_rate_limit_headers_reach_every_client(start_proxy: Any, fake: FakeCodexThread, transport: str) -> None:
    proxy = start_proxy(upstream={"transport": transport})
    add(proxy, "acc-hdr")
    fake.set_usage("acc-hdr", primary_used=33.0, secondary_used=12.0)
    sdk = client(proxy)
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-5.4", messages=[{"role": "user", "content": "h"}])
    with sdk.responses.with_streaming_response.create(model="gpt-5.4", input="h", stream=True) as streamed:
        list(streamed.iter_lines())
        stream_headers = streamed.headers
    claude = anthropic.Anthropic(base_url=proxy.origin, api_key=proxy.key, max_retries=0)
    message = claude.messages.with_raw_response.create(model="gpt-5.4", max_tokens=50, messages=[{"role": "user", "content": "h"}])
    for headers in (raw.headers, stream_headers, message.headers):
        assert float(headers["x-codex-primary-used-percent"]) == 33.0
        assert float(headers["x-codex-secondary-used-percent"]) == 12.0
        assert headers["x-codex-primary-window-minutes"] == "300"
    assert "x-codex-turn-state" in stream_headers and "x-codex-turn-state" not in raw.headers


# --- through the account's proxy --------------------------------------------------------------------------


def test_sockets_open_through_each_accounts_proxy(start_proxy: Any, fake: FakeCodexThread, tmp_path: Path) -> None:
    from tests.support.proxy_servers import Microsocks, Tinyproxy

    with Tinyproxy(tmp_path / "tinyproxy", "127.0.0.2", "tp-user", "tp.pass_1") as tiny, \
            Microsocks(tmp_path / "microsocks", "127.0.0.3", "ms-user", "ms-pass") as socks:  # fmt: skip
        proxy = start_proxy(upstream={"transport": "websocket"}, proxies={"check_url": None})
        ids = {name: add(proxy, f"acc-{name}")["id"] for name in ("tiny", "socks")}
        for name, server in (("tiny", tiny), ("socks", socks)):
            made = proxy.api("POST", "/admin/proxies", json={"url": server.url, "name": name})
            assert made.status_code == 201, made.text
            assigned = proxy.api("POST", "/admin/proxies/assign",
                                 json={"account_ids": [ids[name]], "mode": "specific", "proxy_id": made.json()["proxy"]["id"]})
            assert assigned.status_code == 200, assigned.text
        sdk = client(proxy)
        for i in range(4):
            assert chat(sdk, f"proxied {i}") == f"You said: proxied {i}"
    peers = {(r["account"], r["method"], r["peer"]) for r in fake.requests("/codex/responses")}
    assert peers == {("acc-tiny", "GET", "127.0.0.2"), ("acc-tiny", "WS", "127.0.0.2"),
                     ("acc-socks", "GET", "127.0.0.3"), ("acc-socks", "WS", "127.0.0.3")}  # fmt: skip
    assert posts(fake) == [] and len(upgrades(fake)) == 2  # a socket per account, through its proxy
