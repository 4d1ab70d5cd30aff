"""The Keys page and what the Usage page shows per client key, clicked through in Chromium against
the real proxy, the fake backend and the official SDKs; and the usage charts in Chinese."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import openai
import pytest
from playwright.sync_api import Page, expect

from codex_fake import FakeCodexThread
from tests.browser.conftest import OpenDashboard
from tests.support.accounts import add, chat, wait_for
from tests.support.proxy import ProxyProcess

StartProxy = Callable[..., ProxyProcess]
Snap = Callable[[Page, str], None]
USAGE = {"input_tokens": 1000, "output_tokens": 500, "input_tokens_details": {"cached_tokens": 200}}  # gpt-5.4: $0.00955


def client(proxy: ProxyProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0, timeout=30)


def key_row(page: Page, label: str) -> Any:
    return page.locator("#keys-body tr").filter(has_text=label)


def test_create_a_key_see_it_once_watch_it_spend_then_edit_disable_reset_delete(start_proxy: StartProxy, fake: FakeCodexThread,
                                                                                   open_dashboard: OpenDashboard, snap: Snap) -> None:  # fmt: skip
    proxy = start_proxy()
    add(proxy, "acc-k1")
    page = open_dashboard(proxy, "/dashboard/keys")
    expect(page.locator("#keys-empty")).to_be_visible()

    page.click("#key-new")
    page.fill("#kf-label", "laptop")
    page.fill("#kf-models", "gpt-5.4, gpt-5.4-mini*")
    page.fill("#kf-budget", "100")
    page.select_option("#kf-unit", "tokens")
    page.select_option("#kf-period", "day")
    page.fill("#kf-concurrency", "2")
    page.click("#key-form-submit")
    expect(page.locator("#key-created")).to_be_visible()
    secret = page.locator("#key-secret").inner_text()
    assert re.fullmatch(r"sk-proxy-[0-9a-f]{8}_[\w-]{43}", secret)
    row = key_row(page, "laptop")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("Active")
    expect(row).to_contain_text(secret[:17] + "_…")
    expect(row.locator(".chip")).to_have_text(["gpt-5.4", "gpt-5.4-mini*"])
    expect(row.locator(".in-flight")).to_have_text("0 of 2")
    snap(page, "key-created")
    page.click("#key-created-done")
    expect(page.locator("#key-created")).to_be_hidden()
    assert secret not in page.content()

    fake.script({"usage": USAGE})
    assert chat(client(proxy, secret), "hi")
    with pytest.raises(openai.RateLimitError):
        chat(client(proxy, secret), "hi")
    expect(row.locator(".badge")).to_have_text("Budget used up", timeout=10_000)  # the page refreshes itself
    expect(row.locator(".budget-text")).to_have_text("1,500 tokens of 100 tokens today")
    expect(row.locator(".bar.bad")).to_have_count(1)

    row.get_by_role("button", name="Edit").click()
    expect(page.locator("#kf-label")).to_have_value("laptop")
    expect(page.locator("#kf-budget")).to_have_value("100")
    page.fill("#kf-budget", "5000")
    page.click("#key-form-submit")
    expect(row.locator(".badge")).to_have_text("Active")
    expect(row.locator(".budget-text")).to_have_text("1,500 tokens of 5,000 tokens today")
    assert chat(client(proxy, secret), "hi")

    row.get_by_role("button", name="Disable").click()
    expect(row.locator(".badge")).to_have_text("Disabled")
    with pytest.raises(openai.AuthenticationError):
        chat(client(proxy, secret), "hi")
    row.get_by_role("button", name="Enable").click()
    expect(row.locator(".badge")).to_have_text("Active")

    row.get_by_role("button", name="Reset budget").click()
    page.click("#confirm-yes")
    expect(row.locator(".budget-text")).to_have_text("0 tokens of 5,000 tokens today")

    page.reload()
    assert secret not in page.content()  # never shown again, not even to the dashboard
    row.get_by_role("button", name="Delete").click()
    page.click("#confirm-yes")
    expect(key_row(page, "laptop")).to_have_count(0)
    expect(page.locator("#keys-empty")).to_be_visible()
    with pytest.raises(openai.AuthenticationError):
        chat(client(proxy, secret), "hi")


def test_a_refused_setting_is_shown_in_the_form(start_proxy: StartProxy, open_dashboard: OpenDashboard) -> None:
    page = open_dashboard(start_proxy(), "/dashboard/keys")
    page.click("#key-new")
    page.fill("#kf-label", "ci")
    page.fill("#kf-budget", "2.5")
    page.select_option("#kf-unit", "tokens")
    page.click("#key-form-submit")
    expect(page.locator("#key-form-error")).to_contain_text("whole number")
    expect(page.locator("#key-dialog")).to_be_visible()
    page.select_option("#kf-unit", "usd")
    page.click("#key-form-submit")
    expect(key_row(page, "ci")).to_contain_text("$0.00 of $2.50 today")


def test_the_usage_page_per_key(start_proxy: StartProxy, fake: FakeCodexThread, open_dashboard: OpenDashboard, snap: Snap) -> None:
    proxy = start_proxy()
    add(proxy, "acc-u1")
    ci = proxy.api("POST", "/admin/keys", json={"label": "ci", "budget": {"limit": 0.01, "unit": "usd", "period": "month"}}).json()
    alice = proxy.api("POST", "/admin/keys", json={"label": "alice"}).json()
    fake.script(*[{"usage": USAGE}] * 4)
    chat(client(proxy, ci["api_key"]), "hi")
    chat(client(proxy, ci["api_key"]), "hi")  # $0.0191: over the $0.01 budget from now on
    with pytest.raises(openai.RateLimitError):
        chat(client(proxy, ci["api_key"]), "hi")
    chat(client(proxy, alice["api_key"]), "hi")
    chat(client(proxy, proxy.key), "hi")
    wait_for(lambda: len(proxy.request_log("1=1")) == 5, what="5 logged requests")

    page = open_dashboard(proxy, "/dashboard/usage?hours=1")
    expect(page.locator("body")).to_have_attribute("data-loaded", "1")
    expect(page.locator("[data-stat=requests] .value")).to_have_text("5")
    expect(page.locator("[data-stat=cost] .value")).to_have_text("$0.0382")  # 4 answered turns × $0.00955
    expect(page.locator("[data-stat=cost] .sub")).to_contain_text("not billed per token")
    table = page.locator("#keys-usage tbody tr")
    expect(table).to_have_count(3)
    ci_row = page.locator(f"#keys-usage tr[data-key='{ci['key']['id']}']")
    expect(ci_row.locator("td")).to_have_text(["ci", "3", "1", "2,000 / 1,000", "$0.0191"])
    expect(page.locator("#keys-usage tr[data-key='none'] td").first).to_have_text("(proxy key or none)")
    expect(page.locator("#chart-keys canvas")).to_have_count(1)
    legend = page.locator("#chart-keys .u-legend").inner_text()
    assert "ci" in legend and "alice" in legend
    expect(page.locator("#chart-cost canvas")).to_have_count(1)
    expect(page.locator("#bars-models .hbar .cost").first).to_have_text("$0.0382")
    snap(page, "usage-all")

    page.select_option("#key-filter", ci["key"]["id"])
    expect(page.locator("body")).to_have_attribute("data-loaded", f"1&key_id={ci['key']['id']}")
    assert page.url.endswith(f"?hours=1&key_id={ci['key']['id']}")
    expect(page.locator("[data-stat=requests] .value")).to_have_text("3")
    expect(page.locator("[data-stat=errors] .value")).to_have_text("1")
    expect(page.locator("[data-stat=cost] .value")).to_have_text("$0.0191")
    expect(table).to_have_count(1)
    snap(page, "usage-one-key")

    keys = open_dashboard(proxy, "/dashboard/keys")
    key_row(keys, "alice").get_by_role("button", name="Usage").click()
    expect(keys.locator("body")).to_have_attribute("data-loaded", f"24&key_id={alice['key']['id']}")
    expect(keys.locator("#key-filter")).to_have_value(alice["key"]["id"])
    expect(keys.locator("[data-stat=requests] .value")).to_have_text("1")

    logs = open_dashboard(proxy, "/dashboard/logs")
    logs.select_option("#filter-key", ci["key"]["id"])
    expect(logs.locator("#log-body tr")).to_have_count(3)
    logs.locator("#log-body tr").first.click()
    expect(logs.locator("#detail-fields")).to_contain_text(f"ci (sk-proxy-{ci['key']['id']})")


# Every text a canvas draws, and the chart it belongs to: the axes' tick labels are only on canvas.
RECORD_CANVAS_TEXT = """
window.drawnTexts = [];
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
  window.drawnTexts.push({ chart: this.canvas.closest('.chart')?.id, text: String(text) });
  return fillText.call(this, text, ...rest);
};
"""


def drawn(page: Page, chart: str) -> list[str]:
    return page.evaluate("(chart) => window.drawnTexts.filter((d) => d.chart === chart).map((d) => d.text)", chart)


@pytest.mark.parametrize("hours", [1, 720])
def test_the_usage_charts_speak_the_pages_language(start_proxy: StartProxy, fake: FakeCodexThread, open_dashboard: OpenDashboard,
                                                   snap: Snap, hours: int) -> None:  # fmt: skip
    proxy = start_proxy()
    add(proxy, "acc-zh")
    for i in range(3):
        chat(client(proxy, proxy.key), f"hello {i}")
    wait_for(lambda: len(proxy.request_log("1=1")) == 3, what="3 logged requests")

    pages = {}
    for locale in ("zh-CN", "en-US"):
        page = open_dashboard(proxy, f"/dashboard/usage?hours={hours}", locale=locale, timezone_id="Asia/Shanghai")
        page.add_init_script(RECORD_CANVAS_TEXT)
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-loaded", str(hours))
        expect(page.locator("#chart-requests canvas")).to_have_count(1)
        pages[locale] = page

    zh = pages["zh-CN"]
    expect(zh.locator("#chart-requests .u-legend .u-series").first).to_contain_text("时间")
    expect(zh.locator("#chart-requests .u-legend")).not_to_contain_text("Time")
    ticks = drawn(zh, "chart-requests")
    assert ticks and not [text for text in ticks if re.search(r"[A-Za-z]", text)], ticks  # no "pm", "May", "Time"
    if hours == 1:
        assert any(re.fullmatch(r"\d{1,2}:\d{2}", text) for text in ticks), ticks  # 24-hour times
    assert any(re.fullmatch(r"\d{1,2}月\d{1,2}日", text) for text in ticks), ticks  # dates as Chinese writes them
    zh.locator("#chart-requests details").evaluate("details => { details.open = true; }")
    expect(zh.locator("#chart-requests details thead th").first).to_have_text("时间")
    snap(zh, f"usage-zh-{hours}h")

    en = pages["en-US"]
    expect(en.locator("#chart-requests .u-legend .u-series").first).to_contain_text("Time")
    english = drawn(en, "chart-requests")
    assert any(re.search(r"\b(AM|PM|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b", text) for text in english), english
