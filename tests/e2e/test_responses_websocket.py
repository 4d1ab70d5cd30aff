"""Responses over a client's WebSocket (``GET /v1/responses`` upgraded), with the official ``openai``
SDK's ``responses.connect()`` and, where the SDK hides the wire, the ``websockets`` library.

Every message is carried by mitmproxy's WebSocket layer: a user addon sees (and may change) each
one, and mitmweb lists them on the upgrade's flow.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from codex_fake import FakeCodexThread
from codex_fake import faults as sc
from tests.conftest import proxy_config, with_one_account
from tests.support.mitmweb import MitmWeb, eventually, mitmweb_args
from tests.support.proxy import ProxyProcess

TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


def ws_url(proxy: ProxyProcess, path: str = "/v1/responses") -> str:
    return proxy.origin.replace("http://", "ws://") + path


def turn(conn: Any, **create: Any) -> list[Any]:
    """Send one ``response.create`` and read its events up to the terminal one."""
    conn.send({"type": "response.create", "model": "gpt-5.4", **create})
    events = []
    for event in conn:
        events.append(event)
        if event.type in TERMINAL:
            return events
    raise AssertionError(f"the socket closed mid-turn: {[e.type for e in events]}")


def raw_turn(ws: Any, frame: dict[str, Any]) -> list[dict[str, Any]]:
    ws.send(json.dumps({"type": "response.create", "model": "gpt-5.4", **frame}))
    events = []
    while True:
        events.append(json.loads(ws.recv(timeout=30)))
        if events[-1]["type"] in TERMINAL:
            return events


def test_turns_on_one_socket_carry_the_sse_events(openai_client: openai.OpenAI, proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    scenario = {"reasoning": "Plan it.", "text": ["Hello", " over", " the socket"]}
    fake.script(scenario)
    with openai_client.responses.stream(model="gpt-5.4", input="hi", reasoning={"effort": "low", "summary": "auto"}) as stream:
        sse = [e.type for e in stream]

    fake.script(scenario, {"text": "Second turn."})
    with openai_client.responses.connect() as conn:
        first = turn(conn, input="hi", reasoning={"effort": "low", "summary": "auto"})
        assert first[0].type == "codex.rate_limits"  # the pool's limits, before each turn's events
        assert [e.type for e in first[1:]] == sse  # the very events the SSE route sends
        assert "".join(e.delta for e in first if e.type == "response.output_text.delta") == "Hello over the socket"
        response_id = first[-1].response.id
        second = turn(conn, input="and again", previous_response_id=response_id)
        assert second[-1].type == "response.completed" and second[-1].response.output_text == "Second turn."

    upstream = [r["body"] for r in fake.requests("/codex/responses")][-2:]
    assert "previous_response_id" not in upstream[1]  # the backend keeps nothing: the whole conversation goes up
    first_items, second_items = upstream[0]["input"], upstream[1]["input"]
    assert second_items[: len(first_items)] == first_items
    kinds = [i.get("type") for i in second_items[len(first_items):]]
    assert kinds == ["reasoning", "message", "message"]  # the first answer's output, then the new input
    assert second_items[-1]["content"][0]["text"] == "and again"
    # Each turn is a row of the request log (written in batches), the SSE one and the socket's two.
    eventually(lambda: len(proxy.request_log("protocol = 'responses' and path = '/v1/responses' and status = 200")) >= 3)


def test_errors_are_frames_and_the_socket_lives_on(openai_client: openai.OpenAI, fake: FakeCodexThread) -> None:
    fake.script({"text": "still here"})
    with openai_client.responses.connect() as conn:
        missing = turn(conn, input="x", previous_response_id="resp_unknown")
        error = missing[-1]
        assert error.type == "error" and error.status == 400
        assert error.error.code == "previous_response_not_found" and error.error.param == "previous_response_id"
        conn.send({"type": "response.bogus"})
        assert next(iter(conn)).error.code == "unknown_event_type"
        assert turn(conn, input="x")[-1].response.output_text == "still here"


def test_warm_up_answers_without_calling_upstream(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    """Codex CLI's prewarm: ``generate: false`` opens a response it then continues from."""
    fake.script({"text": "after warm-up"})
    with connect(ws_url(proxy), additional_headers={"Authorization": f"Bearer {proxy.key}"}) as ws:
        warm = raw_turn(ws, {"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "context"}]}],
                             "generate": False, "instructions": "Be brief."})
        assert [e["type"] for e in warm] == ["codex.rate_limits", "response.created", "response.completed"]
        assert warm[-1]["response"]["output"] == [] and fake.requests("/codex/responses") == []
        events = raw_turn(ws, {"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}],
                               "previous_response_id": warm[-1]["response"]["id"], "instructions": "Be brief."})
    assert events[-1]["type"] == "response.completed"
    (request,) = fake.requests("/codex/responses")
    assert [i["content"][0]["text"] for i in request["body"]["input"]] == ["context", "go"]


def test_handshake_is_authenticated(proxy: ProxyProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(proxy), additional_headers={"Authorization": "Bearer wrong"})
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"]["code"] == "invalid_api_key"
    plain = httpx.get(proxy.base_url + "/responses", headers={"Authorization": f"Bearer {proxy.key}"})
    assert plain.status_code == 405  # a GET that is no upgrade
    with connect(ws_url(proxy, "/responses"), additional_headers={"Authorization": f"Bearer {proxy.key}"}) as ws:
        assert ws.protocol.state.name == "OPEN"  # the root alias Codex uses too


def test_exhausted_pool_is_a_usage_limit_frame(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    fake.fault("acc-1", sc.usage_limit_429(resets_in=900))
    with connect(ws_url(proxy), additional_headers={"Authorization": f"Bearer {proxy.key}"}) as ws:
        (frame,) = raw_turn(ws, {"input": "hi"})
    assert frame["type"] == "error" and frame["status"] == 429
    assert frame["error"]["type"] == "usage_limit_reached" and frame["error"]["plan_type"] == "plus"
    assert 0 < frame["error"]["resets_at"] - time.time() <= 905
    assert frame["headers"]["x-codex-primary-used-percent"] == "100.0"


USER_ADDON = '''
import json
from pathlib import Path

SEEN = Path(__file__).with_suffix(".seen")


def websocket_message(flow):
    message = flow.websocket.messages[-1]
    if message.from_client:
        message.text = message.text.replace("secret plan", "edited by an addon")
    with SEEN.open("a") as out:
        out.write(("->" if message.from_client else "<-") + " " + json.loads(message.text)["type"] + "\\n")
'''


def test_a_user_addon_sees_and_edits_every_message(start_proxy: Callable[..., ProxyProcess], fake: FakeCodexThread, tmp_path: Path) -> None:
    addon = tmp_path / "user_addon.py"
    addon.write_text(USER_ADDON)
    proxy = with_one_account(start_proxy(args=("-s", str(addon))))
    fake.script({"text": "done"})
    with connect(ws_url(proxy), additional_headers={"Authorization": f"Bearer {proxy.key}"}) as ws:
        events = raw_turn(ws, {"input": "the secret plan"})
    assert events[-1]["type"] == "response.completed"
    assert fake.requests("/codex/responses")[-1]["body"]["input"][0]["content"][0]["text"] == "the edited by an addon"
    seen = eventually(lambda: (text := addon.with_suffix(".seen").read_text()) and "response.completed" in text and text).splitlines()
    assert seen[0] == "-> response.create" and "<- codex.rate_limits" in seen and seen[-1] == "<- response.completed"
    assert len(seen) == len(events) + 1


@pytest.fixture
def web_proxy(fake: FakeCodexThread, tmp_path: Path) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(tmp_path / "web", proxy_config(fake), tool="mitmweb", verbosity="info", args=mitmweb_args()).start()
    yield with_one_account(proxy)
    proxy.stop()


def test_mitmweb_shows_the_messages(web_proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    proxy = web_proxy
    fake.script({"text": "seen in mitmweb"})
    with connect(ws_url(proxy), additional_headers={"Authorization": f"Bearer {proxy.key}"}) as ws:
        raw_turn(ws, {"input": "hello"})
        web = MitmWeb(proxy)
        flow = eventually(lambda: next((f for f in web.flows() if f.get("websocket")), None))
        assert flow["request"]["method"] == "GET" and flow["response"]["status_code"] == 101
        headers = dict(flow["request"]["headers"])
        assert headers.get("Authorization") in (None, "[redacted]")  # the key never reaches the UI
        messages = web.http.get(f"/flows/{flow['id']}/messages/content/raw.json").json()
        comment = eventually(lambda: next(f for f in web.flows() if f["id"] == flow["id"])["comment"])
    assert comment.startswith("turn 1: responses gpt-5.4 account=") and "status=200" in comment
    texts = [json.loads(m["text"]) for m in messages]
    assert texts[0]["type"] == "response.create" and messages[0]["from_client"] is True
    assert texts[-1]["type"] == "response.completed" and not messages[-1]["from_client"]
    assert "".join(t.get("delta", "") for t in texts if t["type"] == "response.output_text.delta") == "seen in mitmweb"


def test_a_client_leaving_mid_turn_stops_the_upstream(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    fake.script({"text": " ".join(["word"] * 200), "event_delay_ms": 50})
    aborted = fake.stats()["aborted_streams"]
    with connect(ws_url(proxy), additional_headers={"Authorization": f"Bearer {proxy.key}"}) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "gpt-5.4", "input": "talk"}))
        while json.loads(ws.recv(timeout=30))["type"] != "response.output_text.delta":
            pass
    eventually(lambda: fake.stats()["aborted_streams"] > aborted, timeout=10)  # the generation was stopped, not left running
    assert httpx.get(proxy.origin + "/health").status_code == 200


def test_a_client_key_is_held_to_its_budget_on_the_socket(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    created = proxy.api("POST", "/admin/keys", json={"label": "socket", "budget": {"limit": 100, "unit": "tokens", "period": "day"}}).json()
    fake.script({"text": "first", "usage": {"input_tokens": 90, "output_tokens": 30, "total_tokens": 120}})
    try:
        with connect(ws_url(proxy), additional_headers={"Authorization": f"Bearer {created['api_key']}"}) as ws:
            assert raw_turn(ws, {"input": "one"})[-1]["type"] == "response.completed"
            (refused,) = raw_turn(ws, {"input": "two"})  # the first turn spent the budget
    finally:
        proxy.api("DELETE", f"/admin/keys/{created['key']['id']}")
    assert refused["type"] == "error" and refused["status"] == 429 and refused["error"]["code"] == "budget_exceeded"
    assert len(fake.requests("/codex/responses")) == 1
