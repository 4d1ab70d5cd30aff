"""Watching turns in mitmweb: the client's flow (its own request, the translated answer it got), an
"upstream leg" flow per backend call (the translated request as sent, the raw events as received),
the turn's details in the comment — and no credential anywhere mitmweb shows or saves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from mitmproxy import io

from codex_fake import FakeCodexThread, mint_access_token, mint_refresh_token
from codex_fake.faults import server_error_500
from core.codex.sse import SSEParser
from core.hosts.legs import LEG_KEY
from tests.conftest import PROXY_KEY, proxy_config, with_one_account
from tests.support.mitmweb import MitmWeb, eventually, mitmweb_args
from tests.support.proxy import ProxyProcess

CLIENT_KEY = "sk-proj-client-own-real-key-inspect-42"
COOKIE = "cookie-value-that-must-not-show"
QUERY_KEY = "AIza-query-key-that-must-not-show"
WRONG_KEY = "wrong-key-that-must-not-show"


@pytest.fixture
def start_web(fake: FakeCodexThread, tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    started: list[ProxyProcess] = []

    def start(*extra: str, **config: Any) -> ProxyProcess:
        proxy = ProxyProcess(tmp_path / f"web{len(started)}", proxy_config(fake, **config), tool="mitmweb", verbosity="info",
                             args=mitmweb_args(*extra)).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def finished(flows: list[dict[str, Any]], count: int) -> list[dict[str, Any]] | None:
    """The flows once ``count`` of them have their answer (or error) and none is still open."""
    done = [f for f in flows if f.get("response") and f["response"].get("timestamp_end") or f.get("error")]
    return flows if len(flows) >= count and len(done) == len(flows) else None


def legs(flows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in flows if f["comment"].startswith("upstream leg")]


def header(message: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in message["headers"] if key.lower() == name]


def test_a_turn_shows_the_client_view_and_its_upstream_leg(start_web: Callable[..., ProxyProcess], fake: FakeCodexThread) -> None:
    proxy = with_one_account(start_web())
    web = MitmWeb(proxy)
    fake.script({"reasoning": "Think first.", "text": ["Hello", " from", " the", " web"]})
    client = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0)
    chunks = list(client.chat.completions.create(model="gpt-5.4", stream=True, reasoning_effort="low",
                                                 messages=[{"role": "user", "content": "Say hello"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the web"

    flows = eventually(lambda: finished([f for f in web.flows() if f["request"]["path"] != "/auth/accounts"], 2))
    [turn] = [f for f in flows if f["request"]["path"] == "/v1/chat/completions"]
    [leg] = legs(flows)

    # The client's flow: its own request and the translated stream it received (kept once complete).
    assert (turn["request"]["scheme"], turn["request"]["host"], turn["request"]["port"]) == ("http", "127.0.0.1", proxy.port)
    assert orjson.loads(web.content(turn, "request"))["messages"] == [{"role": "user", "content": "Say hello"}]
    answer = web.content(turn, "response")
    assert b'"object":"chat.completion.chunk"' in answer and answer.rstrip().endswith(b"data: [DONE]")
    comment = turn["comment"]
    assert comment.startswith("openai gpt-5.4 account=acct_") and "status=200" in comment and "legs=1" in comment
    assert "ttfb=" in comment and "total=" in comment and " tokens " in comment

    # The leg: the translated request byte for byte as the backend got it, the raw events as sent back.
    assert leg["comment"] == f"upstream leg 1 of POST {proxy.base_url}/chat/completions (flow {turn['id'][:8]})"
    assert leg["request"]["path"] == "/backend-api/codex/responses"
    assert web.content(leg, "request") == fake.requests("/codex/responses")[-1]["raw"]
    assert header(leg["request"], "authorization") == ["[redacted]"]
    assert header(leg["request"], "chatgpt-account-id") == ["acc-1"]
    assert leg["response"]["status_code"] == 200
    events = SSEParser().feed(web.content(leg, "response"))
    assert events[0].event == "response.created" and events[-1].event == "response.completed"
    deltas = [orjson.loads(e.data)["delta"] for e in events if e.event == "response.output_text.delta"]
    assert "".join(deltas) == "Hello from the web"
    assert any(e.event == "response.reasoning_summary_text.delta" for e in events)
    assert proxy.web_api().get("/options").json()["store_streamed_bodies"]["value"] is True


def test_a_turn_over_the_websocket_shows_as_a_leg(start_web: Callable[..., ProxyProcess], fake: FakeCodexThread) -> None:
    proxy = with_one_account(start_web(upstream={"transport": "websocket"}))
    web = MitmWeb(proxy)
    client = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0)
    assert client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "socket"}]).choices[0].message.content == "You said: socket"

    flows = eventually(lambda: finished([f for f in web.flows() if f["request"]["path"] != "/auth/accounts"], 2))
    [leg] = legs(flows)
    # The upgrade request of the socket, with this turn's response.create frame as its body…
    assert leg["request"]["method"] == "GET" and leg["request"]["path"] == "/backend-api/codex/responses"
    assert header(leg["request"], "openai-beta") == ["responses_websockets=2026-02-06"]
    assert header(leg["request"], "authorization") == ["[redacted]"]
    [sent] = [r for r in fake.requests("/codex/responses") if r["method"] == "WS"]
    assert web.content(leg, "request") == sent["raw"]
    # …answered 101, with the turn's frames one per line.
    assert leg["response"]["status_code"] == 101
    frames = [orjson.loads(line) for line in web.content(leg, "response").splitlines()]
    assert frames[0]["type"] == "codex.rate_limits" and frames[-1]["type"] == "response.completed"


def test_retries_show_one_leg_per_attempt(start_web: Callable[..., ProxyProcess], fake: FakeCodexThread) -> None:
    proxy = with_one_account(start_web())
    web = MitmWeb(proxy)
    fake.fault("acc-1", server_error_500(), times=1)  # transient: the same account is tried again
    client = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0)
    assert client.responses.create(model="gpt-5.4", input="hi").output_text
    flows = eventually(lambda: finished([f for f in web.flows() if f["request"]["path"] != "/auth/accounts"], 3))
    [turn] = [f for f in flows if f["request"]["path"] == "/v1/responses"]
    assert [leg["response"]["status_code"] for leg in legs(flows)] == [500, 200]
    assert [leg["comment"].split(" of ")[0] for leg in legs(flows)] == ["upstream leg 1", "upstream leg 2"]
    assert "legs=2" in turn["comment"]


def test_no_credential_reaches_mitmweb_or_a_saved_flow(start_web: Callable[..., ProxyProcess], fake: FakeCodexThread,
                                                       tmp_path: Path) -> None:
    """Every call is a real mitmproxy flow, shown live and saved: none may show or save a credential,
    not even while it passes (the dashboard's session cookie included)."""
    saved, recorded = tmp_path / "saved.flows", tmp_path / "legs.flows"
    proxy = start_web("-w", str(saved), "--set", f"codex_record={recorded}")
    token, refresh = mint_access_token(account_id="acc-1"), mint_refresh_token("acc-1")
    secrets = [PROXY_KEY, token, refresh, CLIENT_KEY, COOKIE, QUERY_KEY, WRONG_KEY]
    web = MitmWeb(proxy)
    with web.live() as live:  # what a browser is sent at every step, not only the final state
        proxy.remove_all_accounts()
        proxy.add_account(token, refresh_token=refresh, label="secret-bearing")  # tokens in a body, through the gateway
        assert proxy.accounts()[0]["has_refresh_token"]  # the control plane still got the real body
        export = proxy.api("GET", "/auth/accounts/export")
        assert refresh in export.text  # the caller gets the full export; mitmweb and -w must not
        page = httpx.get(proxy.origin + "/")  # this machine's browser gets a dashboard session cookie
        session = next(iter(page.cookies.values()))
        assert page.status_code == 200 and len(session) > 16
        secrets.append(session)

        fake.script({"text": "one"}, {"text": "two"}, {"text": "three"})
        base_url_client = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0,
                                        default_headers={"Cookie": f"session={COOKIE}"})
        list(base_url_client.chat.completions.create(model="gpt-5.4", stream=True, messages=[{"role": "user", "content": "a"}]))
        base_url_client.responses.create(model="gpt-5.4", input="b")
        answered = httpx.get(f"{proxy.base_url}/models?key={QUERY_KEY}", headers={"x-goog-api-key": QUERY_KEY})
        assert answered.status_code in (200, 401)  # whether the model list wants a key or not, the key is hidden
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=proxy.base_url, api_key=WRONG_KEY, max_retries=0).responses.create(model="gpt-5.4", input="x")
        proxy_client = openai.OpenAI(api_key=CLIENT_KEY, http_client=proxy.https_client(), max_retries=0)
        list(proxy_client.chat.completions.create(model="gpt-5.4", stream=True, messages=[{"role": "user", "content": "c"}]))
        flows = eventually(lambda: finished(web.flows(), 13))  # 4 management calls, the page, 5 client calls, 3 legs
        eventually(lambda: live.text().count(b'"flows/add"') == 13)  # every flow was pushed as it happened

    pushed = live.text()
    assert b'"flows/update"' in pushed
    shown = web.everything() + pushed
    for secret in secrets:
        assert secret.encode() not in shown, secret
    assert b"[redacted]" in shown
    assert len(legs(flows)) == 3

    proxy.stop()  # the -w file is complete once mitmweb exits
    for path in (saved, recorded):
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, (path.name, secret)
    with saved.open("rb") as file:
        saved_flows = list(io.FlowReader(file).stream())
    assert {f.request.path for f in saved_flows} >= {"/auth/accounts", "/v1/chat/completions", "/v1/responses",
                                                     "/backend-api/codex/responses"}
    with recorded.open("rb") as file:
        recorded_flows = list(io.FlowReader(file).stream())
    assert len(recorded_flows) == 3 and all(LEG_KEY in f.metadata for f in recorded_flows)


def test_old_bodies_are_dropped_beyond_the_budget(start_web: Callable[..., ProxyProcess], fake: FakeCodexThread) -> None:
    budget = 60 * 1024
    proxy = with_one_account(start_web("--set", "codex_body_budget=60k"))
    web = MitmWeb(proxy)
    client = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0)
    for n in range(5):
        client.responses.create(model="gpt-5.4", input=f"turn {n} " + "x" * 20_000)
    flows = eventually(lambda: finished([f for f in web.flows() if f["request"]["path"] != "/auth/accounts"], 10))
    turns = [f for f in flows if f["request"]["path"] == "/v1/responses"]

    def kept(flow: dict[str, Any]) -> int:
        return sum(flow[part]["contentLength"] or 0 for part in ("request", "response") if flow.get(part))

    assert turns[0]["request"]["contentLength"] is None and "bodies dropped (codex_body_budget)" in turns[0]["comment"]
    assert b"turn 4 " in web.content(turns[-1], "request")  # the newest keep theirs
    assert sum(kept(f) for f in web.flows()) <= budget + max(kept(f) for f in flows)
