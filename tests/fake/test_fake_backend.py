"""Tests of the offline Codex fake itself, over real HTTP and WebSocket connections."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
import orjson
import pytest
from curl_cffi import requests as curl

from codex_fake import (
    FakeCodex,
    FakeCodexThread,
    mint_access_token,
    mint_id_token,
    mint_refresh_token,
)
from codex_fake import faults as sc
from codex_fake.tokens import seal_blob

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
BETA = "responses_websockets=2026-02-06"


# --- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Any:
    thread = FakeCodexThread()
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture(autouse=True)
def _fresh(fake: FakeCodexThread) -> None:
    fake.reset()


@pytest.fixture
def base(fake: FakeCodexThread) -> str:
    assert fake.base_url
    return fake.base_url


def auth(account: str = "acc-1", plan: str = "plus", **kw: Any) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {mint_access_token(account, plan, **kw)}",
        "ChatGPT-Account-Id": account,
        "Content-Type": "application/json",
    }


def body(text: str | None = "hi there", **extra: Any) -> dict[str, Any]:
    items = [{"role": "user", "content": [{"type": "input_text", "text": text}]}] if text else []
    out: dict[str, Any] = {"model": "gpt-5.4", "instructions": "", "input": items, "stream": True, "store": False}
    out.update(extra)
    return out


def parse_sse(raw: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: "), block
        assert lines[1].startswith("data: "), block
        assert len(lines) == 2, block
        events.append((lines[0][7:], orjson.loads(lines[1][6:])))
    return events


def post(base: str, payload: Any, headers: dict[str, str] | None = None, path: str = "/backend-api/codex/responses") -> curl.Response:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return curl.post(base + path, data=data, headers=headers if headers is not None else auth(), timeout=30)


def stream(base: str, payload: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> tuple[curl.Response, list[tuple[str, dict[str, Any]]]]:
    resp = post(base, payload or body(), headers)
    assert resp.status_code == 200, resp.text
    return resp, parse_sse(resp.text)


def types(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in events]


def text_of(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(e["delta"] for n, e in events if n == "response.output_text.delta")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


# --- SSE framing ---------------------------------------------------------------------------------------


def test_plain_text_stream_framing_and_headers(base: str) -> None:
    resp, events = stream(base)
    assert resp.headers["content-type"] == "text/event-stream"
    for name in (
        "x-codex-primary-used-percent", "x-codex-primary-window-minutes", "x-codex-primary-reset-at",
        "x-codex-secondary-used-percent", "x-codex-secondary-window-minutes", "x-codex-secondary-reset-at",
        "x-codex-credits-has-credits", "x-codex-credits-unlimited", "x-codex-credits-balance",
        "x-codex-active-limit", "x-codex-turn-state", "x-request-id",
    ):  # fmt: skip
        assert resp.headers.get(name), name
    assert "[DONE]" not in resp.text
    assert [e["sequence_number"] for _, e in events] == list(range(len(events)))
    assert all(name == e["type"] for name, e in events)
    assert types(events)[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types(events)[-1] == "response.completed"
    assert text_of(events) == "You said: hi there"
    assert sum(1 for n in types(events) if n == "response.output_text.delta") == 4  # word-sized deltas
    done = [e for n, e in events if n == "response.output_item.done"]
    assert done[0]["item"]["content"][0]["text"] == "You said: hi there"
    completed = events[-1][1]["response"]
    assert completed["output"] == []
    usage = completed["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["input_tokens_details"] == {"cached_tokens": 0}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert events[0][1]["response"]["id"] == completed["id"] and completed["id"].startswith("resp_")


def test_default_answer_without_user_text(base: str) -> None:
    _, events = stream(base, body(text=None))
    assert text_of(events) == "Hello from the fake Codex backend."


def test_turn_state_is_echoed(base: str) -> None:
    resp, _ = stream(base, headers={**auth(), "x-codex-turn-state": "ts_abc"})
    assert resp.headers["x-codex-turn-state"] == "ts_abc"


def test_default_reasoning_summary_when_requested(base: str) -> None:
    _, events = stream(base, body(reasoning={"effort": "low", "summary": "auto"}))
    names = types(events)
    assert "response.reasoning_summary_text.delta" in names
    item = next(e["item"] for n, e in events if n == "response.output_item.done" and e["item"]["type"] == "reasoning")
    assert item["summary"][0]["text"] == "Thinking about the request."
    assert "encrypted_content" not in item  # not included


# --- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
def test_missing_or_non_bearer_auth_is_401(base: str, headers: dict[str, str]) -> None:
    assert post(base, body(), headers).status_code == 401


def test_forged_jwt_is_401_unauthorized(base: str) -> None:
    forged = jwt.encode({"https://api.openai.com/auth": {"chatgpt_account_id": "acc-1"}, "exp": time.time() + 99}, "x" * 40)
    resp = post(base, body(), {"Authorization": f"Bearer {forged}"})
    assert (resp.status_code, resp.json()) == (401, {"detail": "Unauthorized"})
    resp = post(base, body(), {"Authorization": "Bearer not-a-jwt"})
    assert (resp.status_code, resp.json()) == (401, {"detail": "Unauthorized"})


def test_expired_jwt_gets_token_expired_body(base: str) -> None:
    resp = post(base, body(), auth(exp=int(time.time()) - 10))
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "token_expired"
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.headers["x-openai-authorization-error"] == "token_expired"


def test_account_header_must_match_token(base: str) -> None:
    resp = post(base, body(), {**auth("acc-1"), "ChatGPT-Account-Id": "acc-2"})
    assert resp.status_code == 400
    no_header = {k: v for k, v in auth("acc-1").items() if k != "ChatGPT-Account-Id"}
    assert post(base, body(), no_header).status_code == 200


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"stream": False}, "Stream must be set to true"),
        ({"stream": None}, "Stream must be set to true"),
        ({"store": True}, "Store must be set to false"),
        ({"store": None}, "Store must be set to false"),
    ],
)
def test_stream_and_store_rules(base: str, change: dict[str, Any], expected: str) -> None:
    payload = body()
    for key, value in change.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    resp = post(base, payload)
    assert (resp.status_code, resp.json()) == (400, {"detail": expected})


@pytest.mark.parametrize(
    "field",
    [
        "max_output_tokens", "max_tokens", "max_completion_tokens", "temperature", "top_p", "truncation",
        "user", "safety_identifier", "prompt_cache_retention", "context_management", "previous_response_id",
        "reasoning_effort", "stream_options",
    ],
)  # fmt: skip
def test_unsupported_parameters(base: str, field: str) -> None:
    resp = post(base, body(**{field: 1}))
    assert (resp.status_code, resp.json()) == (400, {"detail": f"Unsupported parameter: {field}"})


def test_all_allow_listed_fields_accepted(base: str) -> None:
    payload = body(
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}],
        tool_choice="auto", parallel_tool_calls=True, reasoning={"effort": "high", "summary": "concise"},
        include=["reasoning.encrypted_content"], prompt_cache_key="k", text={"verbosity": "low"},
        service_tier="priority", client_metadata={"x-codex-installation-id": "abc"},
    )  # fmt: skip
    assert post(base, payload).status_code == 200


def test_unknown_model(base: str) -> None:
    resp = post(base, body(model="gpt-4o-mini"))
    assert resp.status_code == 400
    assert resp.json() == {"detail": "The 'gpt-4o-mini' model is not supported when using Codex with a ChatGPT account."}


@pytest.mark.parametrize("model", ["gpt-5.5", "gpt-5.4-mini", "gpt-oss-20b", "gpt-5.6-sol", "gpt-5.3-codex-spark", "codex-auto-review"])
def test_catalogue_models_accepted(base: str, model: str) -> None:
    assert post(base, body(model=model)).status_code == 200


def test_model_not_on_free_plan(base: str) -> None:
    resp = post(base, body(model="gpt-5.4"), auth("acc-free", plan="free"))
    assert resp.status_code == 400
    assert "not supported when using Codex with a ChatGPT account" in resp.json()["detail"]
    assert post(base, body(model="gpt-5.5"), auth("acc-free", plan="free")).status_code == 200


def test_unanswered_function_call(base: str) -> None:
    call = {"type": "function_call", "call_id": "call_abc", "name": "f", "arguments": "{}"}
    resp = post(base, body(input=[{"role": "user", "content": "x"}, call]))
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["message"] == "No tool output found for function call call_abc."
    assert err["type"] == "invalid_request_error"
    answered = [call, {"type": "function_call_output", "call_id": "call_abc", "output": "ok"}]
    assert post(base, body(input=answered)).status_code == 200


def test_unanswered_custom_tool_call(base: str) -> None:
    call = {"type": "custom_tool_call", "call_id": "call_z9", "name": "apply_patch", "input": "x"}
    resp = post(base, body(input=[call]))
    assert resp.status_code == 400 and "call_z9" in resp.json()["error"]["message"]
    answered = [call, {"type": "custom_tool_call_output", "call_id": "call_z9", "output": "Done"}]
    assert post(base, body(input=answered)).status_code == 200


def test_input_must_be_a_list(base: str) -> None:
    resp = post(base, body(input="hello"))
    assert resp.status_code == 400


def test_reasoning_effort_checked_per_model(base: str) -> None:
    resp = post(base, body(model="gpt-5-codex", reasoning={"effort": "xhigh"}))
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "reasoning.effort"
    assert post(base, body(model="gpt-5.6-sol", reasoning={"effort": "ultra"})).status_code == 200


@pytest.mark.parametrize(("tier", "status"), [("priority", 200), ("flex", 200), ("fast", 400), ("default", 400)])
def test_service_tier(base: str, tier: str, status: int) -> None:
    resp = post(base, body(service_tier=tier))
    assert resp.status_code == status
    if status == 400:
        assert resp.json() == {"detail": f"Unsupported service_tier: {tier}"}


def test_system_role_input_accepted_and_noted(fake: FakeCodexThread, base: str) -> None:
    payload = body(input=[{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}])
    assert post(base, payload).status_code == 200
    assert fake.requests("/codex/responses")[-1]["notes"] == ["system_role_in_input"]
    fake.configure(system_role="reject")
    assert post(base, payload).status_code == 400


def test_instructions_required_switch(fake: FakeCodexThread, base: str) -> None:
    fake.configure(require_instructions=True)
    resp = post(base, body())
    assert (resp.status_code, resp.json()) == (400, {"detail": "Instructions are required"})


def test_invalid_json_body(base: str) -> None:
    assert post(base, b"{not json").status_code == 400


def test_reasoning_from_another_account_is_rejected(base: str) -> None:
    item = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": seal_blob("acc-other", "reasoning")}
    resp = post(base, body(input=[item, {"role": "user", "content": "hi"}]))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_encrypted_content"
    mine = {**item, "encrypted_content": seal_blob("acc-1", "reasoning")}
    assert post(base, body(input=[mine, {"role": "user", "content": "hi"}])).status_code == 200


def test_requests_are_recorded(fake: FakeCodexThread, base: str) -> None:
    post(base, body(), {**auth(), "originator": "codex_cli_rs"})
    rec = fake.requests("/codex/responses")[-1]
    assert rec["method"] == "POST" and rec["path"] == "/backend-api/codex/responses"
    assert rec["headers"]["originator"] == "codex_cli_rs"
    assert rec["body"]["model"] == "gpt-5.4"
    assert orjson.loads(rec["raw"]) == rec["body"]
    assert rec["account"] == "acc-1" and rec["time"] > 0


# --- scripted scenarios ---------------------------------------------------------------------------------


def test_scripted_text_chunks(fake: FakeCodexThread, base: str) -> None:
    fake.script({"text": ["Hel", "lo", "!"]})
    _, events = stream(base)
    assert [e["delta"] for n, e in events if n == "response.output_text.delta"] == ["Hel", "lo", "!"]
    _, events = stream(base)  # queue empty: default behaviour again
    assert text_of(events) == "You said: hi there"


def test_reasoning_encrypted_only_when_included(fake: FakeCodexThread, base: str) -> None:
    fake.script({"reasoning": "**Plan**\n\nThink.", "text": "ok"}, {"reasoning": "Think.", "text": "ok"})
    _, events = stream(base, body(reasoning={"effort": "medium", "summary": "auto"}, include=["reasoning.encrypted_content"]))
    item = next(e["item"] for n, e in events if n == "response.output_item.done" and e["item"]["type"] == "reasoning")
    assert item["encrypted_content"].startswith("gAAAAAB")
    assert item["summary"] == [{"type": "summary_text", "text": "**Plan**\n\nThink."}]
    completed = events[-1][1]["response"]
    assert completed["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    _, events = stream(base, body(reasoning={"effort": "medium"}))  # no summary, no include
    names = types(events)
    assert not any(n.startswith("response.reasoning_summary") for n in names)
    item = next(e["item"] for n, e in events if n == "response.output_item.done" and e["item"]["type"] == "reasoning")
    assert item["summary"] == [] and "encrypted_content" not in item


def test_single_tool_call_deltas_keyed_by_item_id(fake: FakeCodexThread, base: str) -> None:
    fake.script({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "call_7Hq2"}]})
    _, events = stream(base)
    added = next(e for n, e in events if n == "response.output_item.added")
    assert added["item"]["id"].startswith("fc_") and added["item"]["call_id"] == "call_7Hq2"
    deltas = [e for n, e in events if n == "response.function_call_arguments.delta"]
    assert len(deltas) >= 2
    assert all(d["item_id"] == added["item"]["id"] and "call_id" not in d for d in deltas)
    assert "".join(d["delta"] for d in deltas) == '{"city":"Paris"}'
    done = next(e for n, e in events if n == "response.function_call_arguments.done")
    assert done["arguments"] == '{"city":"Paris"}'
    assert not any(n == "response.output_text.delta" for n in types(events))


def test_parallel_tool_calls_interleave(fake: FakeCodexThread, base: str) -> None:
    fake.script({"tool_calls": [{"name": "a", "arguments": '{"q":"one one one"}'}, {"name": "b", "arguments": {"q": "two two two"}}]})
    _, events = stream(base)
    names = types(events)
    adds = [i for i, n in enumerate(names) if n == "response.output_item.added"]
    first_delta = names.index("response.function_call_arguments.delta")
    assert len(adds) == 2 and max(adds) < first_delta
    deltas = [e for n, e in events if n == "response.function_call_arguments.delta"]
    indexes = [d["output_index"] for d in deltas]
    assert indexes[:2] == [0, 1]  # interleaved, not one call after the other
    for index in (0, 1):
        assert sum(1 for i in indexes if i == index) >= 2
    items = [e["item"] for n, e in events if n == "response.output_item.done"]
    assert {i["name"] for i in items} == {"a", "b"} and len({i["call_id"] for i in items}) == 2


def test_custom_tool_call(fake: FakeCodexThread, base: str) -> None:
    fake.script({"custom_tool_calls": [{"name": "apply_patch", "input": "*** Begin Patch\n*** End Patch"}]})
    _, events = stream(base)
    deltas = [e["delta"] for n, e in events if n == "response.custom_tool_call_input.delta"]
    assert len(deltas) >= 2 and "".join(deltas) == "*** Begin Patch\n*** End Patch"
    item = next(e["item"] for n, e in events if n == "response.output_item.done")
    assert item["type"] == "custom_tool_call" and item["id"].startswith("ctc_") and item["call_id"].startswith("call_")


def test_web_search_and_image(fake: FakeCodexThread, base: str) -> None:
    fake.script({"web_search": {"query": "weather"}, "text": "Sunny."}, {"image": {"revised_prompt": "a cat"}})
    _, events = stream(base)
    names = types(events)
    assert ["response.web_search_call.in_progress", "response.web_search_call.searching", "response.web_search_call.completed"] == [
        n for n in names if n.startswith("response.web_search_call")
    ]
    assert "response.output_text.annotation.added" in names
    assert events[-1][1]["response"]["tool_usage"]["web_search"] == {"num_requests": 1}
    _, events = stream(base)
    item = next(e["item"] for n, e in events if n == "response.output_item.done")
    assert item["type"] == "image_generation_call" and item["result"] and item["revised_prompt"] == "a cat"
    assert "image_gen" in events[-1][1]["response"]["tool_usage"]


def test_completed_output_and_usage_override(fake: FakeCodexThread, base: str) -> None:
    fake.script({"text": "hi", "completed_output": True, "usage": {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 512}}})
    _, events = stream(base)
    completed = events[-1][1]["response"]
    assert completed["output"][0]["content"][0]["text"] == "hi"
    assert completed["usage"]["input_tokens"] == 1000
    assert completed["usage"]["input_tokens_details"]["cached_tokens"] == 512
    assert completed["usage"]["total_tokens"] == 1000 + completed["usage"]["output_tokens"]


def test_prompt_cache_simulation(base: str) -> None:
    long_text = "word " * 2000
    _, events = stream(base, body(text=long_text, prompt_cache_key="conv-1"))
    first = events[-1][1]["response"]["usage"]
    assert first["input_tokens_details"]["cached_tokens"] == 0
    _, events = stream(base, body(text=long_text + " more", prompt_cache_key="conv-1"))
    cached = events[-1][1]["response"]["usage"]["input_tokens_details"]["cached_tokens"]
    assert 0 < cached <= first["input_tokens"] and cached % 128 == 0
    _, events = stream(base, body(text=long_text, prompt_cache_key="conv-1"), auth("acc-2"))  # other account
    assert events[-1][1]["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 0


def test_account_queue_before_global(fake: FakeCodexThread, base: str) -> None:
    fake.script({"text": "global"})
    fake.script({"text": "mine"}, account="acc-1")
    assert text_of(stream(base)[1]) == "mine"
    assert text_of(stream(base, headers=auth("acc-2"))[1]) == "global"
    assert text_of(stream(base)[1]) == "You said: hi there"


def test_scenario_headers_and_unknown_keys(fake: FakeCodexThread, base: str) -> None:
    fake.script({"text": "x", "headers": {"x-extra": "1"}})
    resp, _ = stream(base)
    assert resp.headers["x-extra"] == "1"
    with pytest.raises(ValueError):
        fake.script({"txet": "typo"})


def test_benchmark_mode_events(fake: FakeCodexThread, base: str) -> None:
    fake.configure(events=50, event_delay_ms=1, ttfb_ms=5)
    start = time.perf_counter()
    _, events = stream(base)
    elapsed = time.perf_counter() - start
    deltas = [e["delta"] for n, e in events if n == "response.output_text.delta"]
    assert len(deltas) == 50 and all(len(d) == 8 for d in deltas)
    assert elapsed >= 0.05


# --- fault constructors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "status"),
    [
        (sc.usage_limit_429, 429),
        (sc.token_expired_401, 401),
        (sc.ban_403, 403),
        (sc.cloudflare_403, 403),
        (sc.empty_404, 404),
        (sc.payment_402, 402),
        (sc.overloaded_503, 503),
        (sc.server_error_500, 500),
        (sc.rate_limited_429, 429),
        (sc.deactivated_401, 401),
    ],
)
def test_http_fault_constructors(fake: FakeCodexThread, base: str, maker: Any, status: int) -> None:
    fake.script(maker())
    resp = post(base, body())
    assert resp.status_code == status
    assert "text/event-stream" not in resp.headers.get("content-type", "")


def test_usage_limit_429_body_and_headers(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.usage_limit_429(resets_in=120, plan_type="pro"))
    resp = post(base, body())
    err = resp.json()["error"]
    assert err["type"] == "usage_limit_reached" and err["plan_type"] == "pro"
    assert err["resets_in_seconds"] == 120 and abs(err["resets_at"] - time.time() - 120) < 5
    assert resp.headers["x-codex-primary-used-percent"] == "100.0"


def test_cloudflare_vs_ban(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.cloudflare_403(), sc.ban_403())
    cf = post(base, body())
    assert cf.headers["cf-mitigated"] == "challenge" and cf.headers["content-type"].startswith("text/html")
    assert "Just a moment" in cf.text
    ban = post(base, body())
    assert ban.headers["content-type"] == "application/json" and "detail" in ban.json()


def test_empty_404_has_empty_body(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.empty_404())
    resp = post(base, body())
    assert resp.status_code == 404 and resp.content == b""


def test_context_length_failed_in_stream(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.context_length_failed())
    _, events = stream(base)
    assert types(events) == ["response.created", "response.in_progress", "response.failed"]
    response = events[-1][1]["response"]
    assert response["status"] == "failed" and response["error"]["code"] == "context_length_exceeded"


def test_fail_after_n_output_events(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.failed("server_is_overloaded", "busy", after=4))
    _, events = stream(base)
    assert len(events) == 2 + 4 + 1 and types(events)[-1] == "response.failed"


def test_incomplete(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.incomplete("content_filter"))
    _, events = stream(base)
    assert types(events)[-1] == "response.incomplete"
    assert events[-1][1]["response"]["incomplete_details"] == {"reason": "content_filter"}
    assert events[-1][1]["response"]["usage"]["output_tokens"] > 0


def test_error_event(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.error_event("rate_limit_exceeded", "slow down"), sc.error_event("server_error", "boom", after=2))
    _, events = stream(base)
    assert types(events) == ["error"] and events[0][1]["code"] == "rate_limit_exceeded"
    _, events = stream(base)
    assert types(events)[-1] == "error" and len(events) == 2 + 2 + 1


def test_json_instead_of_sse(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.json_instead_of_sse({"hello": "world"}))
    resp = post(base, body())
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.json() == {"hello": "world"}


def test_empty_completion(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.empty_completion())
    _, events = stream(base)
    assert types(events) == ["response.created", "response.in_progress", "response.completed"]
    assert events[-1][1]["response"]["usage"]["output_tokens"] == 0


async def _read_stream(base: str, payload: dict[str, Any]) -> tuple[int, list[str], BaseException | None]:
    chunks: list[str] = []
    error: BaseException | None = None
    async with aiohttp.ClientSession() as session:
        async with session.post(base + "/backend-api/codex/responses", json=payload, headers=auth()) as resp:
            try:
                async for chunk in resp.content.iter_any():
                    chunks.append(chunk.decode())
            except aiohttp.ClientError as exc:
                error = exc
            return resp.status, [n for n, _ in parse_sse("".join(chunks))], error


def test_premature_close_drops_connection(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.premature_close(3))
    status, names, error = run(_read_stream(base, body()))
    assert status == 200 and names == ["response.created", "response.in_progress", "response.output_item.added"]
    assert error is not None  # the chunked body never finished
    fake.script(sc.premature_close(2, mode="eof"))
    status, names, error = run(_read_stream(base, body()))
    assert names == ["response.created", "response.in_progress"] and error is None
    assert fake.stats()["aborted_streams"] == 0


def test_presets_by_name(fake: FakeCodexThread, base: str) -> None:
    fake.script("payment_402", {"preset": "usage_limit_429", "resets_in": 5})
    assert post(base, body()).status_code == 402
    assert post(base, body()).json()["error"]["resets_in_seconds"] == 5


# --- sticky faults and usage ----------------------------------------------------------------------------


def test_sticky_fault_per_account(fake: FakeCodexThread, base: str) -> None:
    fake.script({"text": "queued"})
    fake.fault("acc-1", sc.ban_403())
    for _ in range(3):
        assert post(base, body()).status_code == 403
    assert post(base, body(), auth("acc-2")).status_code == 200  # other account unaffected; pops the script
    fake.script({"text": "queued"})
    fake.clear_fault("acc-1")
    assert text_of(stream(base)[1]) == "queued"


def test_fault_times(fake: FakeCodexThread, base: str) -> None:
    fake.fault("acc-1", sc.overloaded_503(), times=2)
    assert [post(base, body()).status_code for _ in range(3)] == [503, 503, 200]


def test_in_stream_fault(fake: FakeCodexThread, base: str) -> None:
    fake.fault("acc-1", sc.context_length_failed(), times=1)
    _, events = stream(base)
    assert types(events)[-1] == "response.failed"


def test_set_usage_headers_and_enforcement(fake: FakeCodexThread, base: str) -> None:
    fake.set_usage("acc-1", primary_used=42.5, secondary_used=7, primary_reset_after=600, has_credits=True, balance="12.5")
    resp, _ = stream(base)
    assert resp.headers["x-codex-primary-used-percent"] == "42.5"
    assert resp.headers["x-codex-secondary-used-percent"] == "7.0"
    assert resp.headers["x-codex-credits-has-credits"] == "true"
    assert resp.headers["x-codex-credits-balance"] == "12.5"
    assert abs(int(resp.headers["x-codex-primary-reset-at"]) - time.time() - 600) < 5
    fake.set_usage("acc-1", primary_used=100)
    resp = post(base, body())
    assert resp.status_code == 429 and resp.json()["error"]["type"] == "usage_limit_reached"
    assert 0 < resp.json()["error"]["resets_in_seconds"] <= 600
    fake.configure(enforce_usage_limits=False)
    assert post(base, body()).status_code == 200
    with pytest.raises(ValueError):
        fake.set_usage("acc-1", bogus=1)


def test_rate_limits_config_defaults(fake: FakeCodexThread, base: str) -> None:
    fake.configure(rate_limits={"primary_used": 12.0, "primary_window_minutes": 10080})
    resp, _ = stream(base, headers=auth("acc-new"))
    assert resp.headers["x-codex-primary-used-percent"] == "12.0"
    assert resp.headers["x-codex-primary-window-minutes"] == "10080"


def test_configure_rejects_unknown_keys(fake: FakeCodexThread) -> None:
    with pytest.raises(ValueError):
        fake.configure(no_such_knob=1)
    with pytest.raises(TypeError):
        FakeCodex(no_such_knob=1)


# --- compact, models, usage -----------------------------------------------------------------------------


def test_compact(base: str) -> None:
    payload = {"model": "gpt-5.4", "instructions": "", "input": [{"role": "user", "content": "hi"}]}
    resp = post(base, payload, path="/backend-api/codex/responses/compact")
    assert resp.status_code == 200
    output = resp.json()["output"]
    assert output[-1]["type"] == "compaction" and output[-1]["encrypted_content"].startswith("gAAAAAB")
    follow = body(input=[*output, {"role": "user", "content": "again"}])
    assert post(base, follow).status_code == 200  # the compaction item is valid input later
    for extra in ({"stream": True}, {"store": False}):
        resp = post(base, {**payload, **extra}, path="/backend-api/codex/responses/compact")
        assert resp.status_code == 400 and resp.json()["detail"].startswith("Unsupported parameter")
    assert post(base, payload, {}, path="/backend-api/codex/responses/compact").status_code == 401
    resp = post(base, {**payload, "model": "nope"}, path="/backend-api/codex/responses/compact")
    assert resp.status_code == 400


def test_models_endpoint(base: str) -> None:
    resp = curl.get(base + "/backend-api/codex/models?client_version=0.146.0", headers=auth())
    assert resp.status_code == 200
    models = {m["slug"]: m for m in resp.json()["models"]}
    assert {"gpt-5.5", "gpt-5.4", "gpt-5.6-sol", "gpt-5.3-codex-spark", "codex-auto-review"} <= set(models)
    m = models["gpt-5.4"]
    for key in ("display_name", "supported_reasoning_levels", "context_window", "available_in_plans",
                "default_reasoning_level", "minimal_client_version", "visibility", "service_tiers"):  # fmt: skip
        assert key in m
    assert [lvl["effort"] for lvl in m["supported_reasoning_levels"]] == ["low", "medium", "high", "xhigh"]
    assert m["max_context_window"] == 1000000
    etag = resp.headers["etag"]
    again = curl.get(base + "/backend-api/codex/models?client_version=0.146.0", headers={**auth(), "If-None-Match": etag})
    assert again.status_code == 304
    free = curl.get(base + "/backend-api/codex/models?client_version=0.146.0", headers=auth("f", plan="free")).json()
    assert "gpt-5.4" not in {m["slug"] for m in free["models"]}
    old = curl.get(base + "/backend-api/codex/models?client_version=0.120.0", headers=auth()).json()
    assert "gpt-5.6-sol" not in {m["slug"] for m in old["models"]} and "gpt-5.4" in {m["slug"] for m in old["models"]}
    assert curl.get(base + "/backend-api/codex/models", headers={}).status_code == 401


@pytest.mark.parametrize("path", ["/backend-api/wham/usage", "/backend-api/codex/usage", "/backend-api/api/codex/usage", "/api/codex/usage"])
def test_usage_endpoint(fake: FakeCodexThread, base: str, path: str) -> None:
    fake.set_usage("acc-1", primary_used=8, secondary_used=15, plan_type="pro", reset_credits=1)
    data = curl.get(base + path, headers=auth()).json()
    assert data["plan_type"] == "pro"
    rl = data["rate_limit"]
    assert rl["allowed"] is True and rl["limit_reached"] is False
    assert rl["primary_window"]["used_percent"] == 8 and rl["primary_window"]["limit_window_seconds"] == 18000
    assert rl["secondary_window"]["used_percent"] == 15
    assert data["rate_limit_reset_credits"] == {"available_count": 1}
    assert data["credits"]["has_credits"] is False


def test_reset_credits(fake: FakeCodexThread, base: str) -> None:
    fake.set_usage("acc-1", primary_used=100, reset_credits=1)
    listing = curl.get(base + "/backend-api/wham/rate-limit-reset-credits", headers=auth()).json()
    assert listing["available_count"] == 1 and listing["credits"][0]["status"] == "available"
    consume = base + "/backend-api/wham/rate-limit-reset-credits/consume"
    resp = curl.post(consume, data=orjson.dumps({"redeem_request_id": "r1"}), headers=auth())
    assert resp.status_code == 200
    assert post(base, body()).status_code == 200  # primary window reset
    assert curl.post(consume, data=orjson.dumps({"redeem_request_id": "r2"}), headers=auth()).status_code == 409


# --- WebSocket -----------------------------------------------------------------------------------------


def ws_headers(account: str = "acc-1") -> dict[str, str]:
    h = auth(account)
    h.pop("Content-Type")
    h["OpenAI-Beta"] = BETA
    return h


async def ws_turn(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> list[dict[str, Any]]:
    await ws.send_str(orjson.dumps(frame).decode())
    frames = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = orjson.loads(msg.data)
        frames.append(data)
        if data["type"] in ("response.completed", "response.failed", "response.incomplete", "error"):
            return frames


def ws_frame(**extra: Any) -> dict[str, Any]:
    return {"type": "response.create", **body(), **extra}


def test_ws_handshake_rules(base: str) -> None:
    async def go() -> tuple[int, int]:
        async with aiohttp.ClientSession() as s:
            url = base + "/backend-api/codex/responses"
            statuses = []
            for headers in ({k: v for k, v in ws_headers().items() if k != "OpenAI-Beta"}, {"OpenAI-Beta": BETA}):
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await s.ws_connect(url, headers=headers)
                statuses.append(info.value.status)
            return statuses[0], statuses[1]

    assert run(go()) == (400, 401)


def test_ws_turn_and_previous_response_id(fake: FakeCodexThread, base: str) -> None:
    fake.script({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "call_1"}]}, {"text": "18C"})

    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
        async with aiohttp.ClientSession() as s:
            url = base + "/backend-api/codex/responses"
            async with s.ws_connect(url, headers=ws_headers()) as ws:
                upgrade = dict(ws._response.headers)  # type: ignore[union-attr]
                first = await ws_turn(ws, ws_frame())
                resp_id = first[-1]["response"]["id"]
                output = [{"type": "function_call_output", "call_id": "call_1", "output": "18"}]
                second = await ws_turn(ws, ws_frame(previous_response_id=resp_id, input=output))
            async with s.ws_connect(url, headers=ws_headers()) as other:
                third = await ws_turn(other, ws_frame(previous_response_id=resp_id, input=output))
            return first, second, third, upgrade

    first, second, third, upgrade = run(go())
    assert "x-codex-turn-state" in {k.lower() for k in upgrade}
    assert first[0]["type"] == "codex.rate_limits" and first[1]["type"] == "response.created"
    assert "sequence_number" in first[1] and first[-1]["type"] == "response.completed"
    assert any(f["type"] == "response.function_call_arguments.delta" for f in first)
    assert second[-1]["type"] == "response.completed"
    assert "".join(f["delta"] for f in second if f["type"] == "response.output_text.delta") == "18C"
    assert second[1]["response"]["previous_response_id"] == first[-1]["response"]["id"]
    assert third == [
        {
            "type": "error",
            "status": 400,
            "error": {
                "type": "invalid_request_error",
                "code": "previous_response_not_found",
                "message": f"Previous response with id '{first[-1]['response']['id']}' not found.",
                "param": "previous_response_id",
            },
        }
    ]
    frames = [r for r in fake.requests("/codex/responses") if r["method"] == "WS"]
    assert len(frames) == 3 and frames[1]["body"]["previous_response_id"]


def test_ws_previous_tool_call_must_be_answered(fake: FakeCodexThread, base: str) -> None:
    fake.script({"tool_calls": [{"name": "f", "arguments": "{}", "call_id": "call_x"}]})

    async def go() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(base + "/backend-api/codex/responses", headers=ws_headers()) as ws:
                first = await ws_turn(ws, ws_frame())
                return await ws_turn(ws, ws_frame(previous_response_id=first[-1]["response"]["id"], input=[{"role": "user", "content": "?"}]))

    frames = run(go())
    assert frames[-1]["type"] == "error" and "call_x" in frames[-1]["error"]["message"]


def test_ws_errors_as_frames(fake: FakeCodexThread, base: str) -> None:
    fake.script(sc.usage_limit_429(resets_in=60))

    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(base + "/backend-api/codex/responses", headers=ws_headers()) as ws:
                limited = await ws_turn(ws, ws_frame())
                invalid = await ws_turn(ws, ws_frame(temperature=0.2))
                fine = await ws_turn(ws, ws_frame())
                return limited, invalid, fine

    limited, invalid, fine = run(go())
    assert limited[0]["type"] == "error" and limited[0]["status"] == 429
    assert limited[0]["error"]["type"] == "usage_limit_reached"
    assert limited[0]["headers"]["x-codex-primary-used-percent"] == "100.0"
    assert invalid[0]["status"] == 400 and "Unsupported parameter: temperature" in invalid[0]["error"]["message"]
    assert fine[-1]["type"] == "response.completed"


def test_ws_one_turn_at_a_time(fake: FakeCodexThread, base: str) -> None:
    fake.script({"text": ["a", "b", "c"], "event_delay_ms": 50})

    async def go() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(base + "/backend-api/codex/responses", headers=ws_headers()) as ws:
                await ws.send_str(orjson.dumps(ws_frame()).decode())
                await ws.send_str(orjson.dumps(ws_frame()).decode())
                frames = []
                while not frames or frames[-1]["type"] != "response.completed":
                    frames.append(orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data))
                return frames

    frames = run(go())
    errors = [f for f in frames if f["type"] == "error"]
    assert len(errors) == 1 and errors[0]["error"]["code"] == "response_in_progress"


# --- OAuth -----------------------------------------------------------------------------------------------


def authorize(base: str, challenge: str, **extra: str) -> curl.Response:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "http://localhost:1455/auth/callback",
        "scope": "openid profile email offline_access",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-1",
        **extra,
    }
    return curl.get(base + "/oauth/authorize", params=params, allow_redirects=False)


def token(base: str, form: dict[str, str], as_json: bool = False) -> curl.Response:
    if as_json:
        return curl.post(base + "/oauth/token", json=form)
    return curl.post(base + "/oauth/token", data=form)


def test_oauth_pkce_happy_path(base: str) -> None:
    verifier, challenge = pkce()
    resp = authorize(base, challenge)
    assert resp.status_code == 302
    location = urlsplit(resp.headers["location"])
    assert location.netloc == "localhost:1455" and location.path == "/auth/callback"
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"]
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "code": query["code"][0],
        "redirect_uri": "http://localhost:1455/auth/callback",
        "code_verifier": verifier,
    }
    tokens = token(base, form).json()
    assert set(tokens) >= {"id_token", "access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"].startswith("oaistb_rt_")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["https://api.openai.com/auth"]["chatgpt_account_id"] == "acc-oauth-1"
    assert claims["https://api.openai.com/auth"]["chatgpt_plan_type"] == "plus"
    id_claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert id_claims["email"] == "oauth@example.com"
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert post(base, body(), headers).status_code == 200
    assert token(base, form).status_code == 400  # single-use code


def test_oauth_bad_verifier_and_params(base: str) -> None:
    _verifier, challenge = pkce()
    code = parse_qs(urlsplit(authorize(base, challenge).headers["location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": code,
            "redirect_uri": "http://localhost:1455/auth/callback", "code_verifier": "wrong"}  # fmt: skip
    resp = token(base, form)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    assert authorize(base, challenge, code_challenge_method="plain").status_code == 400
    assert authorize(base, challenge, client_id="other").status_code == 400
    assert authorize(base, "").status_code == 400
    assert authorize(base, challenge, redirect_uri="https://evil.example/cb").status_code == 400


def test_oauth_login_identity_choices(fake: FakeCodexThread, base: str) -> None:
    def login(**extra: str) -> dict[str, Any]:
        verifier, challenge = pkce()
        code = parse_qs(urlsplit(authorize(base, challenge, **extra).headers["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": code,
                "redirect_uri": "http://localhost:1455/auth/callback", "code_verifier": verifier}  # fmt: skip
        tok = token(base, form, as_json=True).json()
        return jwt.decode(tok["access_token"], options={"verify_signature": False})["https://api.openai.com/auth"]

    assert login(login_hint="acc-hint")["chatgpt_account_id"] == "acc-hint"
    fake.configure(next_login={"account_id": "acc-next", "plan": "pro"})
    assert login()["chatgpt_account_id"] == "acc-next" and login()["chatgpt_account_id"] == "acc-oauth-1"


def test_refresh_rotation_reuse_and_count(fake: FakeCodexThread, base: str) -> None:
    rt = mint_refresh_token("acc-r", plan="pro", email="r@example.com")
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": rt}
    first = token(base, form)
    assert first.status_code == 200
    new_rt = first.json()["refresh_token"]
    assert new_rt != rt
    claims = jwt.decode(first.json()["access_token"], options={"verify_signature": False})
    assert claims["https://api.openai.com/auth"]["chatgpt_plan_type"] == "pro"
    assert claims["https://api.openai.com/profile"]["email"] == "r@example.com"
    reused = token(base, form)
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "refresh_token_reused"
    ok = token(base, {**form, "refresh_token": new_rt, "scope": "openid profile email"}, as_json=True)
    assert ok.status_code == 200
    unknown = token(base, {**form, "refresh_token": "oaistb_rt_garbage"})
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "refresh_token_invalidated"
    assert fake.refresh_count("acc-r") == 3
    assert fake.refresh_count() == 4


def test_refresh_family_revocation_option(fake: FakeCodexThread, base: str) -> None:
    fake.configure(refresh_reuse_revokes_family=True)
    rt = mint_refresh_token("acc-f")
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": rt}
    child = token(base, form).json()["refresh_token"]
    assert token(base, form).status_code == 401
    resp = token(base, {**form, "refresh_token": child})
    assert resp.json()["error"]["code"] == "refresh_token_invalidated"


def test_refresh_faults_and_ttl(fake: FakeCodexThread, base: str) -> None:
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": mint_refresh_token("acc-x")}
    fake.configure(refresh_fault={"status": 500})
    assert token(base, form).status_code == 500
    fake.configure(refresh_fault=None, access_token_ttl=120)
    fake.fault("acc-x", sc.refresh_error(401, "refresh_token_expired"), times=1)
    resp = token(base, form)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "refresh_token_expired"
    resp = token(base, form)  # the fault was single-use, and a failed attempt did not spend the RT
    assert resp.status_code == 200 and resp.json()["expires_in"] == 120
    exp = jwt.decode(resp.json()["access_token"], options={"verify_signature": False})["exp"]
    assert abs(exp - time.time() - 120) < 5
    assert fake.refresh_count("acc-x") == 3
    assert post(base, body(), auth("acc-x")).status_code == 200  # refresh_error does not touch responses


def test_refresh_omit_keeps_old_token_valid(fake: FakeCodexThread, base: str) -> None:
    fake.configure(refresh_omit=["refresh_token", "id_token"])
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": mint_refresh_token("acc-o")}
    first = token(base, form).json()
    assert "refresh_token" not in first and "id_token" not in first and first["access_token"]
    assert token(base, form).status_code == 200


def test_token_delay_makes_concurrent_refresh_visible(fake: FakeCodexThread, base: str) -> None:
    fake.configure(token_delay_ms=200)
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": mint_refresh_token("acc-c")}

    async def go() -> list[int]:
        async with aiohttp.ClientSession() as s:
            async def one() -> int:
                async with s.post(base + "/oauth/token", data=form) as resp:
                    return resp.status

            return await asyncio.gather(one(), one())

    start = time.perf_counter()
    statuses = run(go())
    assert time.perf_counter() - start >= 0.2
    assert sorted(statuses) == [200, 401]
    assert fake.refresh_count("acc-c") == 2


def test_refresh_reuse_interval_allows_only_the_last_spent_token_briefly(fake: FakeCodexThread, base: str) -> None:
    fake.configure(refresh_reuse_interval_seconds=0.6)
    rt = mint_refresh_token("acc-ri")
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": rt}
    child = token(base, form).json()["refresh_token"]
    again = token(base, form)  # within the overlap: a fresh, different successor
    assert again.status_code == 200 and again.json()["refresh_token"] not in (rt, child)
    grandchild = token(base, {**form, "refresh_token": child}).json()["refresh_token"]
    assert grandchild
    stale = token(base, form)  # rt is no longer the family's last spent token
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "refresh_token_reused"
    time.sleep(0.7)
    late = token(base, {**form, "refresh_token": child})  # the last spent one, but after the interval
    assert late.status_code == 401 and late.json()["error"]["code"] == "refresh_token_reused"


def test_strict_single_use_by_default(fake: FakeCodexThread, base: str) -> None:
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": mint_refresh_token("acc-s")}
    assert token(base, form).status_code == 200
    assert token(base, form).json()["error"]["code"] == "refresh_token_reused"


@pytest.mark.parametrize("phase, spent", [("before", False), ("after", True)])
def test_token_delay_phase_decides_whether_a_client_that_leaves_burned_the_token(
    fake: FakeCodexThread, base: str, phase: str, spent: bool
) -> None:
    fake.configure(token_delay_ms=600, token_delay_phase=phase)
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": mint_refresh_token("acc-p")}

    async def leave_early() -> None:
        async with aiohttp.ClientSession() as s:
            with pytest.raises(asyncio.TimeoutError):
                async with s.post(base + "/oauth/token", data=form, timeout=aiohttp.ClientTimeout(total=0.2)):
                    pass

    run(leave_early())
    time.sleep(0.6)  # let a cancelled "before" grant's sleep run out: it must still not act
    fake.configure(token_delay_ms=0)
    resp = token(base, form)
    assert (resp.status_code == 401) is spent, resp.text
    assert fake.refresh_count("acc-p") == 2
    with pytest.raises(ValueError):
        fake.configure(token_delay_phase="sometimes")


def test_cloudflare_cookies_on_request(fake: FakeCodexThread, base: str) -> None:
    assert "set-cookie" not in {k.lower() for k in post(base, body()).headers}
    fake.configure(set_cookies=True)
    resp = post(base, body(), auth("acc-cookie"))
    cookies = resp.headers.get_list("set-cookie")
    assert any(c.startswith("cf_clearance=clear-acc-cookie;") for c in cookies)
    assert any(c.startswith("__cf_bm=") for c in cookies)


def test_device_code_flow(fake: FakeCodexThread, base: str) -> None:
    start = curl.post(base + "/api/accounts/deviceauth/usercode", json={"client_id": CLIENT_ID}).json()
    assert start["interval"] == "1" and start["device_auth_id"] and "-" in start["user_code"]
    poll = {"device_auth_id": start["device_auth_id"], "user_code": start["user_code"]}
    assert curl.post(base + "/api/accounts/deviceauth/token", json=poll).status_code == 403
    assert fake.approve_device(start["user_code"])
    done = curl.post(base + "/api/accounts/deviceauth/token", json=poll).json()
    assert set(done) == {"authorization_code", "code_verifier", "code_challenge"}
    form = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": done["authorization_code"],
            "redirect_uri": f"{base}/deviceauth/callback", "code_verifier": done["code_verifier"]}  # fmt: skip
    tokens = token(base, form)
    assert tokens.status_code == 200 and tokens.json()["access_token"]


def test_device_auto_approve_and_http_approve(fake: FakeCodexThread, base: str) -> None:
    fake.configure(device_auto_approve_after=2)
    start = curl.post(base + "/api/accounts/deviceauth/usercode", json={"client_id": CLIENT_ID}).json()
    poll = {"device_auth_id": start["device_auth_id"], "user_code": start["user_code"]}
    codes = [curl.post(base + "/api/accounts/deviceauth/token", json=poll).status_code for _ in range(3)]
    assert codes == [403, 403, 200]
    fake.configure(device_auto_approve_after=None)
    start = curl.post(base + "/api/accounts/deviceauth/usercode", json={"client_id": CLIENT_ID}).json()
    approve = curl.post(base + "/__fake/device/approve", json={"user_code": start["user_code"]})
    assert approve.status_code == 200
    poll = {"device_auth_id": start["device_auth_id"], "user_code": start["user_code"]}
    assert curl.post(base + "/api/accounts/deviceauth/token", json=poll).status_code == 200
    assert curl.post(base + "/__fake/device/approve", json={"user_code": "NOPE-0000"}).status_code == 404


def test_id_token_claims() -> None:
    claims = jwt.decode(mint_id_token("acc-9", "team", "t@example.com"), options={"verify_signature": False})
    auth_claims = claims["https://api.openai.com/auth"]
    assert claims["email"] == "t@example.com" and auth_claims["chatgpt_account_id"] == "acc-9"
    assert auth_claims["chatgpt_plan_type"] == "team" and auth_claims["organizations"]


# --- aborts, concurrency, control API, lifecycles --------------------------------------------------------


def test_client_abort_is_counted(fake: FakeCodexThread, base: str) -> None:
    fake.configure(events=200, event_delay_ms=20)

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            resp = await s.post(base + "/backend-api/codex/responses", json=body(), headers=auth())
            await resp.content.readuntil(b"\n\n")
            resp.close()  # drop the connection mid-stream

    run(go())
    deadline = time.time() + 2
    while time.time() < deadline and fake.stats()["aborted_streams"] == 0:
        time.sleep(0.01)
    stats = fake.stats()
    assert stats["aborted_streams"] == 1 and stats["streams_open"] == 0 and stats["completed_streams"] == 0
    assert time.time() < deadline  # noticed promptly, not after the remaining 4 s of events


def test_thousand_concurrent_streams(fake: FakeCodexThread, base: str) -> None:
    fake.configure(events=20, event_delay_ms=2)

    async def go() -> list[int]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as s:
            async def one() -> int:
                async with s.post(base + "/backend-api/codex/responses", json=body(), headers=auth()) as resp:
                    text = await resp.text()
                    return sum(1 for n, _ in parse_sse(text) if n == "response.output_text.delta")

            return await asyncio.gather(*(one() for _ in range(1000)))

    counts = run(go())
    assert counts == [20] * 1000
    assert fake.stats()["completed_streams"] == 1000


def test_http_control_api(base: str) -> None:
    def call(method: str, path: str, **kw: Any) -> curl.Response:
        return curl.request(method, base + "/__fake/" + path, **kw)

    assert call("POST", "script", json={"scenarios": [{"text": "via http"}], "account": "acc-1"}).status_code == 200
    assert text_of(stream(base)[1]) == "via http"
    assert call("POST", "fault", json={"account": "acc-1", "fault": "overloaded_503", "times": 1}).status_code == 200
    assert post(base, body()).status_code == 503
    call("POST", "fault", json={"account": "acc-1", "fault": sc.ban_403()})
    assert call("DELETE", "fault", params={"account": "acc-1"}).status_code == 200
    assert post(base, body()).status_code == 200
    assert call("POST", "config", json={"events": 3}).status_code == 200
    assert len([1 for n, _ in stream(base)[1] if n == "response.output_text.delta"]) == 3
    assert call("POST", "config", json={"nope": 1}).status_code == 400
    call("POST", "usage", json={"account": "acc-1", "primary_used": 55})
    assert stream(base)[0].headers["x-codex-primary-used-percent"] == "55.0"
    recorded = call("GET", "requests", params={"path": "/codex/responses"}).json()
    assert recorded and recorded[-1]["body"]["model"] == "gpt-5.4" and "raw_b64" in recorded[-1]
    token(base, {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": mint_refresh_token("acc-h")})
    assert call("GET", "refresh_count", params={"account": "acc-h"}).json() == {"count": 1}
    stats = call("GET", "stats").json()
    assert set(stats) == {"requests", "streams_open", "aborted_streams", "completed_streams", "websockets_open",
                          "websocket_upgrades"}
    assert call("POST", "reset").status_code == 200
    assert call("GET", "requests").json() == []
    assert call("POST", "script", json={"scenarios": [{"bogus": 1}]}).status_code == 400


def test_in_process_async_api() -> None:
    async def go() -> tuple[int, str]:
        fake = FakeCodex(events=4)
        base = await fake.start(port=0)
        try:
            fake.script({"text": "async"})
            async with aiohttp.ClientSession() as s:
                async with s.post(base + "/backend-api/codex/responses", json=body(), headers=auth()) as resp:
                    text = await resp.text()
            return resp.status, "".join(e["delta"] for n, e in parse_sse(text) if n == "response.output_text.delta")
        finally:
            await fake.stop()

    assert run(go()) == (200, "async")


def test_standalone_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "codex_fake", "--port", "0", "--events", "5"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("fake codex listening on http://127.0.0.1:")
        base = line.rsplit(" ", 1)[1]
        _, events = stream(base)
        assert len([1 for n, _ in events if n == "response.output_text.delta"]) == 5
        assert curl.get(base + "/__fake/stats").json()["completed_streams"] == 1
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_device_page_approves(base: str) -> None:
    start = curl.post(base + "/api/accounts/deviceauth/usercode", json={"client_id": CLIENT_ID}).json()
    assert "Enter the code" in curl.get(base + "/codex/device").text
    page = curl.post(base + "/codex/device", data={"user_code": start["user_code"].lower()})
    assert "Approved" in page.text
    poll = {"device_auth_id": start["device_auth_id"], "user_code": start["user_code"]}
    assert curl.post(base + "/api/accounts/deviceauth/token", json=poll).status_code == 200


def test_stats_survive_reset_and_count_abort_during_ttfb() -> None:
    async def go() -> tuple[dict[str, int], dict[str, int]]:
        fake = FakeCodex(events=20, event_delay_ms=20)
        base = await fake.start()
        try:
            async with aiohttp.ClientSession() as s:
                resp = await s.post(base + "/backend-api/codex/responses", json=body(), headers=auth())
                await resp.content.readuntil(b"\n\n")
                fake.reset()  # while the stream is open: the new counters stay clean
                await resp.read()
                after_reset = fake.stats()
                fake.configure(ttfb_ms=2000)
                task = asyncio.ensure_future(s.post(base + "/backend-api/codex/responses", json=body(), headers=auth()))
                await asyncio.sleep(0.2)
                task.cancel()  # the client gives up before the first byte
                await asyncio.gather(task, return_exceptions=True)
                await asyncio.sleep(0.2)
                return after_reset, fake.stats()
        finally:
            await fake.stop()

    after_reset, after_ttfb_abort = run(go())
    assert after_reset == {"requests": 0, "streams_open": 0, "aborted_streams": 0, "completed_streams": 0,
                           "websockets_open": 0, "websocket_upgrades": 0}
    assert after_ttfb_abort["aborted_streams"] == 1 and after_ttfb_abort["streams_open"] == 0


def test_stamped_events_carry_their_send_time() -> None:
    """Benchmark mode: each text delta is the monotonic time it was sent, for per-event latency."""
    run(_stamped_events())


async def _stamped_events() -> None:
    import time as _time

    from curl_cffi.requests import AsyncSession

    from codex_fake import FakeCodex, mint_access_token

    fake = FakeCodex(events=5, stamp_events=True)
    base = await fake.start()
    try:
        before = _time.monotonic_ns()
        async with AsyncSession() as session:
            response = await session.post(
                base + "/backend-api/codex/responses",
                headers={"Authorization": "Bearer " + mint_access_token(), "Content-Type": "application/json"},
                json={"model": "gpt-5.4", "input": [{"role": "user", "content": "x"}], "stream": True, "store": False},
            )
        after = _time.monotonic_ns()
        stamps = [int(line.split('"delta":"')[1][:20]) for line in response.text.splitlines()
                  if line.startswith("data:") and '"response.output_text.delta"' in line]
        assert len(stamps) == 5 and stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after
    finally:
        await fake.stop()
