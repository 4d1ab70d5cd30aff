"""Client access keys against the real proxy (mitmdump), the fake backend and the official SDKs:
budgets in tokens and USD refuse a key once spent (429 in each protocol's envelope), expired and
disabled keys are 401, the concurrency cap holds while a stream is open and frees its slot however
the turn ends, the proxy key keeps working, keys are shown once, and the usage API reports each
key's requests, tokens and cost."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from codex_fake import FakeCodexThread
from tests.conftest import PROXY_KEY, proxy_config, with_one_account
from tests.support.accounts import wait_for
from tests.support.mitmweb import MitmWeb, mitmweb_args
from tests.support.proxy import ProxyProcess

# What the fake answers with (scripted): gpt-5.4 at $2.50 / $0.25 cached / $15 per 1M tokens.
USAGE = {"input_tokens": 1000, "output_tokens": 500, "input_tokens_details": {"cached_tokens": 200}}
COST = (800 * 2.50 + 200 * 0.25 + 500 * 15.00) / 1_000_000  # $0.00955


@pytest.fixture(scope="module")
def keys_proxy(fake_server: FakeCodexThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(tmp_path_factory.mktemp("keys"), proxy_config(fake_server)).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(keys_proxy: ProxyProcess, fake: FakeCodexThread) -> ProxyProcess:
    for key in keys_proxy.api("GET", "/admin/keys").json()["keys"]:
        keys_proxy.api("DELETE", f"/admin/keys/{key['id']}")
    return with_one_account(keys_proxy)


def create(proxy: ProxyProcess, **fields: Any) -> tuple[dict[str, Any], str]:
    response = proxy.api("POST", "/admin/keys", json={"label": "test key", **fields})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["api_key"].startswith("sk-proxy-" + body["key"]["id"] + "_")
    return body["key"], body["api_key"]


def key_state(proxy: ProxyProcess, key_id: str) -> dict[str, Any]:
    response = proxy.api("GET", f"/admin/keys/{key_id}")
    assert response.status_code == 200, response.text
    return response.json()["key"]


def oa(proxy: ProxyProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0, timeout=30)


def an(proxy: ProxyProcess, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.origin, api_key=key, max_retries=0, timeout=30)


def chat(client: openai.OpenAI, model: str = "gpt-5.4") -> str:
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content or ""


def message(client: anthropic.Anthropic) -> Any:
    return client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hi"}])


def gemini(proxy: ProxyProcess, key: str) -> httpx.Response:
    return httpx.post(f"{proxy.origin}/v1beta/models/gpt-5.4:generateContent", headers={"x-goog-api-key": key},
                      json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=30)  # fmt: skip


def upstream_calls(fake: FakeCodexThread) -> int:
    return len(fake.requests("/codex/responses"))


# --- budgets -----------------------------------------------------------------------------------------


def test_a_token_budget_lets_one_turn_through_then_429_in_each_envelope(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    budget = {"limit": 100, "unit": "tokens", "period": "day"}

    _, key = create(proxy, budget=budget)
    fake.script({"usage": USAGE})
    assert chat(oa(proxy, key))
    before = upstream_calls(fake)
    with pytest.raises(openai.RateLimitError) as chat_refused:
        chat(oa(proxy, key))
    assert chat_refused.value.body["code"] == "budget_exceeded" and chat_refused.value.body["type"] == "rate_limit_error"
    assert "daily budget of 100 tokens" in chat_refused.value.body["message"]
    retry_after = int(chat_refused.value.response.headers["retry-after"])
    assert 0 < retry_after <= 86400 + 3600  # until local midnight (a DST day is 25 h)
    with pytest.raises(openai.RateLimitError):
        oa(proxy, key).responses.create(model="gpt-5.4", input="hi")

    _, key = create(proxy, budget=budget)
    fake.script({"usage": USAGE})
    assert message(an(proxy, key)).content[0].text
    with pytest.raises(anthropic.RateLimitError) as messages_refused:
        message(an(proxy, key))
    assert messages_refused.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": messages_refused.value.body["error"]["message"]}}
    assert "budget" in messages_refused.value.body["error"]["message"]

    _, key = create(proxy, budget=budget)
    fake.script({"usage": USAGE})
    assert gemini(proxy, key).status_code == 200
    refused = gemini(proxy, key)
    assert refused.status_code == 429 and refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert refused.json()["error"]["details"][0]["@type"].endswith("RetryInfo")

    assert upstream_calls(fake) == before + 2  # the refused turns never went upstream


def test_a_usd_budget_counts_the_estimated_cost_and_can_be_raised_or_reset(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    meta, key = create(proxy, budget={"limit": 0.005, "unit": "usd", "period": "total"})
    client = oa(proxy, key)
    fake.script({"usage": USAGE})
    chat(client)
    state = wait_for(lambda: (s := key_state(proxy, meta["id"]))["status"] == "over_budget" and s, what="the key over budget")
    assert state["spent"]["tokens"] == 1500 and state["spent"]["usd"] == pytest.approx(COST)
    assert state["spent"]["resets_at"] is None  # a total budget never starts over
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    assert "retry-after" not in refused.value.response.headers  # waiting would not help

    raised = proxy.api("PATCH", f"/admin/keys/{meta['id']}", json={"budget": {"limit": 0.05, "unit": "usd", "period": "total"}})
    assert raised.status_code == 200 and raised.json()["key"]["status"] == "active"
    assert raised.json()["key"]["spent"]["usd"] == pytest.approx(COST)  # same period: what it spent still counts
    fake.script({"usage": USAGE})
    chat(client)
    reset = proxy.api("POST", f"/admin/keys/{meta['id']}/reset")
    assert reset.json()["key"]["spent"] | {"last_used_at": None} == {"tokens": 0, "usd": 0, "period_start": None, "resets_at": None,
                                                                      "last_used_at": None}  # fmt: skip


def test_allowed_models_refuse_others_with_403(proxy: ProxyProcess) -> None:
    _, key = create(proxy, allowed_models=["gpt-5.4-mini*"])
    assert chat(oa(proxy, key), model="gpt-5.4-mini-high")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(oa(proxy, key), model="gpt-5.4")
    assert refused.value.body["code"] == "model_not_allowed" and refused.value.body["param"] == "model"
    with pytest.raises(anthropic.PermissionDeniedError):
        message(an(proxy, key))  # claude-sonnet-4-6 is served by gpt-5.4


# --- who may call ------------------------------------------------------------------------------------


def test_expired_disabled_unknown_and_deleted_keys_are_401(proxy: ProxyProcess) -> None:
    expiring, expiring_key = create(proxy, expires_at=time.time() + 1.5)
    assert chat(oa(proxy, expiring_key))
    time.sleep(1.6)
    with pytest.raises(openai.AuthenticationError) as expired:
        chat(oa(proxy, expiring_key))
    assert expired.value.body["code"] == "key_expired"
    with pytest.raises(anthropic.AuthenticationError) as expired_messages:
        message(an(proxy, expiring_key))
    assert expired_messages.value.body["error"]["type"] == "authentication_error"
    assert key_state(proxy, expiring["id"])["status"] == "expired"
    assert gemini(proxy, expiring_key).json()["error"]["status"] == "UNAUTHENTICATED"

    meta, key = create(proxy)
    assert proxy.api("PATCH", f"/admin/keys/{meta['id']}", json={"enabled": False}).json()["key"]["status"] == "disabled"
    with pytest.raises(openai.AuthenticationError) as disabled:
        chat(oa(proxy, key))
    assert disabled.value.body["code"] == "key_disabled"
    proxy.api("PATCH", f"/admin/keys/{meta['id']}", json={"enabled": True})
    assert chat(oa(proxy, key))

    with pytest.raises(openai.AuthenticationError):
        chat(oa(proxy, key[:-4] + "AAAA"))  # right id, wrong secret
    with pytest.raises(openai.AuthenticationError):
        chat(oa(proxy, "sk-proxy-00000000_" + "x" * 43))
    assert proxy.api("DELETE", f"/admin/keys/{meta['id']}").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        chat(oa(proxy, key))


def test_a_client_key_is_held_to_its_limits_in_proxy_mode_too(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    """A loopback proxy client needs no key; one that sends a client key gets that key's limits."""
    meta, key = create(proxy, budget={"limit": 10, "unit": "tokens", "period": "total"})
    real_api = openai.OpenAI(api_key=key, http_client=proxy.https_client(), max_retries=0)  # https://api.openai.com/v1
    fake.script({"usage": USAGE})
    assert chat(real_api)
    with pytest.raises(openai.RateLimitError):
        chat(real_api)
    assert openai.OpenAI(api_key="sk-proj-its-own-key", http_client=proxy.https_client(), max_retries=0).models.list().data
    assert chat(openai.OpenAI(api_key="sk-proj-its-own-key", http_client=proxy.https_client(), max_retries=0))
    rows = wait_for(lambda: (found := proxy.request_log("key_id = ?", meta["id"])) and len(found) == 2 and found, what="both rows")
    assert [r["status"] for r in rows] == [200, 429]


def test_the_proxy_key_still_works_and_client_keys_manage_nothing(proxy: ProxyProcess) -> None:
    _, key = create(proxy, budget={"limit": 1, "unit": "tokens", "period": "total"})
    assert chat(oa(proxy, PROXY_KEY))
    assert message(an(proxy, PROXY_KEY)).content
    for path in ("/admin/keys", "/auth/accounts", "/admin/usage-stats/summary"):
        refused = httpx.get(proxy.origin + path, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert refused.status_code == 401, path
    rows = proxy.request_log("key_id IS NULL AND protocol = 'anthropic'")
    assert rows and rows[-1]["cost_basis"] == "api_equivalent" and rows[-1]["cost_usd"] > 0


def test_keys_are_shown_once_and_stored_as_digests(proxy: ProxyProcess) -> None:
    meta, key = create(proxy)
    secret = key.split("_", 1)[1]
    chat(oa(proxy, key))
    listed = proxy.api("GET", "/admin/keys")
    shown = proxy.api("GET", f"/admin/keys/{meta['id']}")
    changed = proxy.api("PATCH", f"/admin/keys/{meta['id']}", json={"label": "renamed"})
    for response in (listed, shown, changed):
        assert secret not in response.text and "digest" not in response.text
    assert listed.json()["keys"][0]["prefix"] == f"sk-proxy-{meta['id']}"
    wait_for(lambda: proxy.request_log("key_id = ?", meta["id"]), what="the request logged")
    with sqlite3.connect(proxy.data_dir / "codex-proxy.db") as db:
        dump = "\n".join(db.iterdump())
    assert secret not in dump and meta["id"] in dump
    assert secret not in proxy.log()


# --- concurrency -------------------------------------------------------------------------------------


def test_the_concurrency_cap_holds_while_a_stream_is_open_and_frees_its_slot(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    meta, key = create(proxy, max_concurrency=1)
    client = oa(proxy, key)
    fake.script({"text": " ".join(["word"] * 40), "event_delay_ms": 50})
    stream = client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "long"}], stream=True)
    chunks = iter(stream)
    next(chunks)  # the stream is open and answering
    assert key_state(proxy, meta["id"])["in_flight"] == 1
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    assert refused.value.body["code"] == "concurrency_limit_exceeded" and refused.value.response.headers["retry-after"] == "1"
    with pytest.raises(anthropic.RateLimitError):
        message(an(proxy, key))
    assert "word" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chat(client)  # the finished stream gave its slot back

    # A client that goes away mid-stream gives it back too.
    fake.script({"text": " ".join(["word"] * 200), "event_delay_ms": 50})
    with httpx.stream("POST", f"{proxy.base_url}/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": "long"}]}) as response:  # fmt: skip
        assert response.status_code == 200
        next(response.iter_bytes())
    wait_for(lambda: key_state(proxy, meta["id"])["in_flight"] == 0, what="the slot of the abandoned stream")

    # And so does a turn the backend fails.
    fake.script({"http_error": {"status": 400, "body": {"error": {"message": "bad", "type": "invalid_request_error"}}}})
    with pytest.raises(openai.BadRequestError):
        chat(client)
    assert key_state(proxy, meta["id"])["in_flight"] == 0
    assert chat(client)


def test_a_flow_killed_in_mitmweb_frees_its_slot_and_mitmweb_never_holds_the_key(fake: FakeCodexThread, tmp_path: Any) -> None:
    proxy = ProxyProcess(tmp_path / "web", proxy_config(fake), tool="mitmweb", args=mitmweb_args(), verbosity="info").start()
    try:
        with_one_account(proxy)
        web = MitmWeb(proxy)
        meta, key = create(proxy, max_concurrency=1)
        fake.script({"text": " ".join(["word"] * 200), "event_delay_ms": 50})
        streaming = threading.Thread(target=lambda: _drain(proxy, key), daemon=True)
        streaming.start()
        live = wait_for(lambda: next((f for f in web.flows() if f["request"]["path"] == "/v1/chat/completions" and f.get("response")), None),
                        what="the stream in mitmweb")  # fmt: skip
        assert key_state(proxy, meta["id"])["in_flight"] == 1
        assert web.command("POST", f"/flows/{live['id']}/kill").status_code == 200
        streaming.join(10)
        wait_for(lambda: key_state(proxy, meta["id"])["in_flight"] == 0, what="the killed flow's slot")
        assert chat(oa(proxy, key))
        assert key.split("_", 1)[1].encode() not in web.everything()  # the creation answer and every call, redacted
    finally:
        proxy.stop()


def _drain(proxy: ProxyProcess, key: str) -> None:
    try:
        for _ in oa(proxy, key).chat.completions.create(model="gpt-5.4", stream=True, messages=[{"role": "user", "content": "long"}]):
            pass
    except (openai.APIError, httpx.HTTPError):
        pass  # killed mid-stream


def test_parallel_requests_over_the_cap_are_refused(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    _, key = create(proxy, max_concurrency=2)
    fake.script(*[{"ttft_ms": 800} for _ in range(5)])
    outcomes: list[int] = []

    def one() -> None:
        try:
            chat(oa(proxy, key))
            outcomes.append(200)
        except openai.RateLimitError:
            outcomes.append(429)

    threads = [threading.Thread(target=one) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == [200, 200, 429, 429, 429]


# --- usage per key -----------------------------------------------------------------------------------


def test_the_usage_api_reports_each_keys_requests_tokens_and_cost(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    meta, key = create(proxy, label="reporting", budget={"limit": 2000, "unit": "tokens", "period": "month"})
    since = time.time()
    fake.script({"usage": USAGE}, {"usage": USAGE})
    chat(oa(proxy, key))
    message(an(proxy, key))
    with pytest.raises(openai.RateLimitError):
        chat(oa(proxy, key))  # 3000 tokens spent of 2000
    wait_for(lambda: len(proxy.request_log("key_id = ?", meta["id"])) == 3, what="3 rows of the key")

    summary = proxy.api("GET", "/admin/usage-stats/summary?hours=1").json()
    row = next(r for r in summary["by_key"] if r["key"] == meta["id"])
    assert (row["label"], row["requests"], row["succeeded"], row["failed"]) == ("reporting", 3, 2, 1)
    assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"]) == (2000, 1000, 400)
    assert row["cost_usd"] == pytest.approx(2 * COST) and row["api_equivalent_usd"] == pytest.approx(2 * COST)
    assert summary["totals"]["cost_usd"] >= row["cost_usd"]

    only = proxy.api("GET", f"/admin/usage-stats/summary?hours=1&key_id={meta['id']}").json()
    assert only["totals"]["requests"] == 3 and [r["key"] for r in only["by_key"]] == [meta["id"]]
    assert {r["key"] for r in only["by_model"]} == {"gpt-5.4"}
    series = proxy.api("GET", f"/admin/usage-stats/series?hours=1&granularity=five_min&group=key&key_id={meta['id']}").json()
    assert series["names"][meta["id"]] == "reporting" and sum(p["requests"] for p in series["data_points"]) == 3
    history = proxy.api("GET", f"/admin/usage-stats/history?hours=1&granularity=hourly&key_id={meta['id']}").json()
    assert sum(p["cost_usd"] for p in history["data_points"]) == pytest.approx(2 * COST)
    logs = proxy.api("GET", f"/admin/logs?key_id={meta['id']}&since={since}").json()
    assert logs["total"] == 3 and {r["status"] for r in logs["logs"]} == {200, 429}
    assert proxy.api("GET", "/admin/logs?key_id=none&limit=200").json()["total"] >= 0
    state = key_state(proxy, meta["id"])
    assert state["spent"]["tokens"] == 3000 and state["status"] == "over_budget"


def test_bad_key_settings_are_400(proxy: ProxyProcess) -> None:
    for body in ({}, {"label": ""}, {"label": "x", "budget": {"limit": -1}}, {"label": "x", "budget": {"limit": 1, "unit": "eur"}},
                 {"label": "x", "max_concurrency": 0}, {"label": "x", "allowed_models": "gpt-5.4"}, {"label": "x", "colour": "red"},
                 {"label": "x", "budget": {"limit": 1.5, "unit": "tokens"}}):  # fmt: skip
        response = proxy.api("POST", "/admin/keys", json=body)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request", body
    assert proxy.api("PATCH", "/admin/keys/nothere", json={"label": "x"}).status_code == 404


# --- across a restart --------------------------------------------------------------------------------


def test_spending_survives_a_restart(fake: FakeCodexThread, start_proxy: Any) -> None:
    proxy = with_one_account(start_proxy())
    meta, key = create(proxy, budget={"limit": 1000, "unit": "tokens", "period": "month"})
    fake.script({"usage": USAGE})
    chat(oa(proxy, key))
    proxy.stop()  # a clean stop flushes the counters
    proxy.start()
    state = key_state(proxy, meta["id"])
    assert state["spent"]["tokens"] == 1500 and state["status"] == "over_budget"
    with pytest.raises(openai.RateLimitError):
        chat(oa(proxy, key))
