"""The Providers page in Chromium against the real proxy and the provider fakes: adding providers,
their keys and models, routes and "where does it go", export and import, Chinese, a phone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import openai
from playwright.sync_api import Page, expect

from codex_fake import FakeCodexThread
from tests.browser.conftest import PHONE, OpenDashboard
from tests.support.providers import Fakes
from tests.support.proxy import ProxyProcess

StartProxy = Callable[..., ProxyProcess]
Snap = Callable[[Page, str], None]


def provider_row(page: Page, provider_id: str) -> object:
    return page.locator(f"#providers-body tr[data-id='{provider_id}']")


def add_through_the_form(page: Page, kind: str, key: str, base_url: str, wire: str | None = None, name: str | None = None) -> None:
    page.click("#provider-add")
    page.select_option("#pf-kind", kind)
    if wire:
        page.select_option("#pf-wire", wire)
    if name:
        page.fill("#pf-name", name)
    page.fill("#pf-base-url", base_url)
    page.fill("#pf-keys", key)
    page.click("#pf-save")
    expect(page.locator("#provider-dialog")).not_to_be_visible()


def test_add_providers_manage_keys_and_models(start_proxy: StartProxy, provider_fakes: Fakes, open_dashboard: OpenDashboard,
                                              snap: Snap) -> None:  # fmt: skip
    proxy = start_proxy()
    page = open_dashboard(proxy, "/dashboard/providers")
    expect(page.locator("#providers-empty")).to_be_visible()
    expect(page.locator("nav [data-nav=providers]")).to_have_attribute("aria-current", "page")

    page.click("#provider-add")
    page.select_option("#pf-kind", "anthropic")
    expect(page.locator("#pf-wire option")).to_have_text(["Anthropic Messages"])
    expect(page.locator("#pf-base-url")).to_have_attribute("placeholder", "https://api.anthropic.com")
    page.click("#provider-dialog button[value=cancel]")

    add_through_the_form(page, "openrouter", "sk-or-v1-test-0001", provider_fakes.openrouter.base_url)
    row = provider_row(page, "openrouter")
    expect(row).to_contain_text("OpenRouter")
    expect(row).to_contain_text("1 of 1 usable")
    expect(row).to_contain_text("3 models")
    expect(row.locator(".badge.active")).to_have_text("Enabled")
    add_through_the_form(page, "custom", "sk-proj-test-openai-0001", provider_fakes.openai.base_url, wire="chat", name="Local OpenAI")
    expect(provider_row(page, "custom")).to_contain_text("Chat Completions")
    assert "sk-or-v1-test-0001" not in page.content() and "sk-proj-test-openai-0001" not in page.content()
    snap(page, "providers")

    row.locator("[data-action=detail]").click()
    dialog = page.locator("#detail-dialog")
    expect(dialog.locator("#keys-body tr")).to_have_count(1)
    expect(dialog.locator("#keys-body")).to_contain_text("sk-or-…0001")
    expect(dialog.locator("#models-list .chip")).to_have_count(3)
    page.fill("#key-new", "sk-or-v1-test-0002")
    page.click("#key-add")
    expect(dialog.locator("#keys-body tr")).to_have_count(2)
    dialog.locator("#keys-body tr").first.locator("[data-action=key-toggle]").click()
    expect(dialog.locator("#keys-body tr").first.locator(".badge")).to_have_text("Disabled")
    page.click("#models-refresh")
    expect(dialog.locator("#models-state")).to_contain_text("Fetched")
    snap(page, "provider-detail")
    dialog.locator("button[value=close]").click()
    expect(row).to_contain_text("1 of 2 usable")
    statuses = {k["label"] or k["masked"]: k["status"] for k in proxy.api("GET", "/admin/providers/openrouter").json()["provider"]["keys"]}
    assert sorted(statuses.values()) == ["active", "disabled"]

    row.locator("[data-action=toggle]").click()
    expect(row.locator(".badge.disabled")).to_have_text("Disabled")
    provider_row(page, "custom").locator("[data-action=delete]").click()
    page.click("#confirm-yes")
    expect(provider_row(page, "custom")).to_have_count(0)


def test_routes_send_a_name_where_the_page_says(start_proxy: StartProxy, fake: FakeCodexThread, provider_fakes: Fakes,
                                               open_dashboard: OpenDashboard) -> None:  # fmt: skip
    proxy = start_proxy()
    proxy.api("POST", "/admin/providers", json={"kind": "openrouter", "base_url": provider_fakes.openrouter.base_url, "keys": ["sk-or-v1-test-0001"]})
    page = open_dashboard(proxy, "/dashboard/providers")
    expect(page.locator("#routes-empty")).to_be_visible()
    page.fill("#route-pattern", "fast-*")
    page.fill("#route-targets", "openrouter:meta-llama/llama-3.3-70b-instruct, chatgpt")
    page.click("#route-add")
    expect(page.locator("#routes-body tr")).to_have_count(1)
    expect(page.locator("#routes-body .chip")).to_have_text(["1. openrouter: meta-llama/llama-3.3-70b-instruct", "2. ChatGPT pool"])
    page.fill("#route-pattern", "house")
    page.fill("#route-targets", "chatgpt:gpt-5.4-mini")
    page.click("#route-add")
    page.locator("#routes-body tr").nth(1).locator("[data-action=route-up]").click()
    expect(page.locator("#routes-body tr").first).to_have_attribute("data-pattern", "house")

    page.fill("#resolve-model", "fast-lane")
    page.click("#resolve-submit")
    expect(page.locator("#resolve-result")).to_have_text("fast-lane → openrouter: meta-llama/llama-3.3-70b-instruct → ChatGPT pool: gpt-5.4")

    client = openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30)
    answer = client.chat.completions.create(model="fast-lane", messages=[{"role": "user", "content": "routed from the page"}])
    assert answer.choices[0].message.content == "You said: routed from the page"
    assert provider_fakes.openrouter.requests("/chat/completions")[-1]["body"]["model"] == "meta-llama/llama-3.3-70b-instruct"

    page.fill("#route-pattern", "broken")
    page.fill("#route-targets", "nowhere")
    page.click("#route-add")
    expect(page.locator(".toast.bad")).to_contain_text("unknown target 'nowhere'")
    page.locator("#routes-body tr").first.locator("[data-action=route-delete]").click()
    expect(page.locator("#routes-body tr")).to_have_count(1)


def test_export_then_import_into_another_proxy(start_proxy: StartProxy, provider_fakes: Fakes, open_dashboard: OpenDashboard,
                                               tmp_path: Path) -> None:  # fmt: skip
    first = start_proxy("first")
    first.api("POST", "/admin/providers", json={"kind": "gemini", "base_url": provider_fakes.gemini.base_url, "keys": ["AIzaSy-test-gemini-0001"]})
    first.api("PUT", "/admin/model-routes", json={"routes": [{"pattern": "g-*", "targets": ["gemini"]}]})
    page = open_dashboard(first, "/dashboard/providers")
    page.click("#providers-export")
    expect(page.locator("dialog.confirm")).to_contain_text("clear text")
    with page.expect_download() as download:
        page.click("#confirm-yes")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    exported = json.loads(path.read_text())
    assert exported["providers"][0]["keys"] == ["AIzaSy-test-gemini-0001"] and exported["routes"] == [{"pattern": "g-*", "targets": [{"provider": "gemini"}]}]

    second = start_proxy("second")
    other = open_dashboard(second, "/dashboard/providers")
    other.click("#providers-import")
    other.set_input_files("#pimport-file", str(path))
    other.click("#pimport-submit")
    expect(other.locator("#pimport-result")).to_have_text("1 added, 0 updated, 0 failed")
    expect(provider_row(other, "gemini")).to_contain_text("1 of 1 usable")
    expect(other.locator("#routes-body tr")).to_have_count(1)


def test_chinese_and_a_phone(start_proxy: StartProxy, provider_fakes: Fakes, open_dashboard: OpenDashboard, snap: Snap) -> None:
    proxy = start_proxy()
    proxy.api("POST", "/admin/providers", json={"kind": "anthropic", "base_url": provider_fakes.anthropic.base_url, "keys": ["sk-ant-api03-test-0001"]})
    page = open_dashboard(proxy, "/dashboard/providers", locale="zh-CN", viewport=PHONE, color_scheme="dark")
    expect(page.locator("h1")).to_have_text("提供商")
    expect(provider_row(page, "anthropic")).to_contain_text("1/1 可用")
    expect(page.locator("#routes-empty")).to_contain_text("没有路由")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"the page scrolls sideways on a phone ({width}px)"
    snap(page, "providers-phone-zh")
