"""One screenshot per dashboard page in a lived-in state, for the README (``make screenshots``
writes them to docs/screenshots/; a plain test run to test-artifacts/screenshots/).

The state is real — accounts in several states, requests through the official SDKs, bodies
captured — except for the earlier part of the day on the Usage page: rows for the past 24 hours
are written straight into the request log so its charts show a day rather than a minute. The test
that checks the charts against real requests is tests/browser/test_dashboard.py."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import anthropic
import openai
import sqlite_utils
from playwright.sync_api import Page, expect

from codex_fake import FakeCodexThread
from codex_fake import faults as sc
from core.config import shipped_yaml
from core.pricing import Pricing
from core.settings import price_table
from tests.browser.conftest import LAPTOP, PHONE, Browsing, OpenDashboard, settled
from tests.support.accounts import add, chat, chat_stream, wait_for
from tests.support.proxy import ROOT, ProxyProcess
from tests.support.servers import non_loopback_address

OUT = ROOT / os.environ.get("CODEX_PROXY_SCREENSHOTS", "test-artifacts/screenshots")


def save(page: Page, name: str, full_page: bool = True) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # let bars and charts finish their transition
    page.screenshot(path=OUT / f"{name}.png", full_page=full_page)


def past_day(account_ids: list[str], key_ids: list[str | None], now: float) -> list[dict[str, Any]]:
    """A made-up day of traffic: busier in the afternoon, a few rate limits, priced as the proxy prices it."""
    rng = random.Random(8)
    pricing = Pricing(price_table(shipped_yaml("default.yaml")[0]["pricing"]["models"]))
    rows = []
    for hour in range(24, 0, -1):
        busy = 4 + int(10 * max(0.0, 1 - abs(hour - 8) / 8))
        for _ in range(rng.randint(busy // 2, busy)):
            ts = now - hour * 3600 + rng.uniform(0, 3600)
            model = rng.choice(["gpt-5.4", "gpt-5.4", "gpt-5.4-mini", "gpt-5.5", "gpt-5.3-codex"])
            failed = rng.random() < 0.05
            output = rng.randint(80, 2400)
            ttfb = rng.uniform(350, 1800)
            tokens_in, cached = rng.randint(2000, 60000), rng.randint(0, 40000)
            cost = None if failed else pricing.cost(model, tokens_in, output, min(cached, tokens_in))
            rows.append({
                "ts": ts, "request_id": f"req_history_{len(rows)}", "account_id": None if failed else rng.choice(account_ids),
                "protocol": rng.choice(["openai", "anthropic", "responses", "responses"]), "path": "/v1/responses", "model": model,
                "requested_model": model, "stream": 1, "status": 429 if failed else 200,
                "error": "Codex API error (429): The usage limit has been reached" if failed else None,
                "input_tokens": None if failed else tokens_in, "output_tokens": None if failed else output,
                "cached_tokens": None if failed else min(cached, tokens_in), "reasoning_tokens": 0, "ttfb_ms": ttfb,
                "duration_ms": ttfb + output / rng.uniform(40, 120) * 1000, "attempts": 1, "key_id": rng.choice(key_ids),
                "cost_usd": cost, "cost_basis": None if failed else "api_equivalent",
            })  # fmt: skip
    return rows


def test_screenshots_of_every_page(start_proxy: Any, fake: FakeCodexThread, open_dashboard: OpenDashboard, browsing: Browsing) -> None:
    proxy: ProxyProcess = start_proxy(logs={"capture_bodies": True}, ollama={"enabled": False})
    work = add(proxy, "acc-work", plan="pro", label="work")
    home = add(proxy, "acc-home", plan="plus", label="personal")
    team = add(proxy, "acc-team", plan="team")
    spare = add(proxy, "acc-spare", plan="plus", label="spare")
    add(proxy, "acc-limited", plan="plus", label="weekend")
    add(proxy, "acc-old", plan="plus", label="old laptop", refresh=False)
    proxy.api("POST", "/auth/accounts/batch-status", json={"ids": [spare["id"]], "status": "disabled"})
    for account, (short, week) in {"acc-work": (38.0, 61.0), "acc-home": (12.0, 24.0), "acc-team": (71.0, 44.0),
                                   "acc-limited": (100.0, 83.0)}.items():  # fmt: skip
        fake.set_usage(account, primary_used=short, secondary_used=week)
    keys = {label: proxy.api("POST", "/admin/keys", json={"label": label, **limits}).json() for label, limits in {
        "alice (laptop)": {"budget": {"limit": 20, "unit": "usd", "period": "month"}, "max_concurrency": 4},
        "ci": {"budget": {"limit": 2_000_000, "unit": "tokens", "period": "day"}, "allowed_models": ["gpt-5.4-mini*"], "expires_in_days": 30},
        "bob (desktop)": {"budget": {"limit": 5, "unit": "usd", "period": "day"}},
    }.items()}  # fmt: skip
    proxy.api("PATCH", f"/admin/keys/{keys['bob (desktop)']['key']['id']}", json={"enabled": False})
    db = sqlite_utils.Database(proxy.data_dir / "codex-proxy.db")
    key_ids = [None, *(k["key"]["id"] for k in keys.values())]
    db["request_log"].insert_all(past_day([work["id"], home["id"], team["id"]], key_ids, time.time()))

    client = openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30)
    claude = anthropic.Anthropic(base_url=proxy.origin, api_key=proxy.key, max_retries=0, timeout=30)
    fake.script({"text": "Here is the refactored function, with the loop replaced by a comprehension."})
    for i in range(6):
        chat_stream(client, f"refactor step {i}", model="gpt-5.4")
    ci = openai.OpenAI(base_url=proxy.base_url, api_key=keys["ci"]["api_key"], max_retries=0, timeout=30)
    alice = openai.OpenAI(base_url=proxy.base_url, api_key=keys["alice (laptop)"]["api_key"], max_retries=0, timeout=30)
    for i in range(3):
        chat(ci, f"summarise file {i}", model="gpt-5.4-mini")
    chat(alice, "explain this stack trace", model="gpt-5.4")
    claude.messages.create(model="claude-sonnet-4-6", max_tokens=512, messages=[{"role": "user", "content": "Review this diff"}])
    fake.fault("acc-limited", sc.usage_limit_429(resets_in=5 * 3600))
    fake.fault("acc-old", sc.token_expired_401())
    for i in range(8):
        try:
            chat(client, f"spread {i}")
        except openai.APIError:
            pass
    wait_for(lambda: {a["label"]: a["status"] for a in proxy.accounts()}.get("old laptop") == "expired", what="the expired account")
    for account in proxy.accounts():
        proxy.api("GET", f"/auth/accounts/{account['id']}/quota")

    page = open_dashboard(proxy, "/", viewport=LAPTOP)
    expect(page.locator("#accounts-body tr")).to_have_count(6)
    save(page, "accounts")
    for name, path, ready in (("connect", "/dashboard/connect", "#models-table"), ("keys", "/dashboard/keys", "#keys-body tr"),
                              ("usage", "/dashboard/usage?hours=24", "#chart-tokens canvas"),
                              ("settings", "/dashboard/settings", "#form-rotation"), ("logs", "/dashboard/logs", "#log-body tr")):  # fmt: skip
        page.goto(proxy.origin + path)
        settled(page)
        expect(page.locator(ready).first).to_be_visible()
        save(page, name, full_page=name != "logs")  # the log's first screenful says enough

    page.locator("#log-body tr").filter(has_text="gpt-5.4").first.click()
    expect(page.locator("#detail-response")).to_be_visible()
    save(page, "logs-detail", full_page=False)

    phone = open_dashboard(proxy, "/", viewport=PHONE)
    phone.context.add_cookies([{"name": "codex_proxy_theme", "value": "dark", "url": proxy.origin}])
    phone.reload()
    settled(phone)
    expect(phone.locator("#accounts-body tr")).to_have_count(6)
    save(phone, "accounts-phone-dark")

    address = non_loopback_address()
    if address is not None:  # the login form other machines see, from a proxy listening beyond loopback
        lan: ProxyProcess = start_proxy("lan", args=("--listen-host", "0.0.0.0"))
        login = browsing.new_context(viewport={"width": 900, "height": 560}).new_page()
        login.goto(f"http://{address}:{lan.port}/")
        expect(login.locator("#password")).to_be_visible()
        save(login, "login")
    assert {path.stem for path in Path(OUT).glob("*.png")} >= {"accounts", "connect", "keys", "usage", "logs", "settings"}


def test_screenshot_of_the_providers_page(start_proxy: Any, provider_fakes: Any, open_dashboard: OpenDashboard) -> None:
    from tests.support.providers import add_provider, set_routes

    proxy: ProxyProcess = start_proxy("providers")
    add_provider(proxy, "openrouter", provider_fakes.openrouter.base_url, ["sk-or-v1-test-0001", "sk-or-v1-test-0002"])
    add_provider(proxy, "anthropic", provider_fakes.anthropic.base_url, ["sk-ant-api03-test-0001"])
    add_provider(proxy, "gemini", provider_fakes.gemini.base_url, ["AIzaSy-test-gemini-0001"], enabled=False)
    add_provider(proxy, "custom", provider_fakes.openai.base_url, ["sk-proj-test-openai-0001"], id="vllm", name="Lab vLLM", wire="chat")
    set_routes(proxy, {"pattern": "claude-opus-*", "targets": ["anthropic:claude-opus-4-1-20250805", "chatgpt"]},
               {"pattern": "cheap", "targets": ["openrouter:meta-llama/llama-3.3-70b-instruct", "vllm:gpt-4o-mini"]})  # fmt: skip
    page = open_dashboard(proxy, "/dashboard/providers", viewport=LAPTOP)
    expect(page.locator("#providers-body tr")).to_have_count(4)
    page.fill("#resolve-model", "cheap")
    page.click("#resolve-submit")
    expect(page.locator("#resolve-result")).to_contain_text("cheap →")
    save(page, "providers")
