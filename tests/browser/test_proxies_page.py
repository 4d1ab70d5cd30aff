"""The Proxies page in Chromium against the real proxy, the fake backend and real proxy servers
(tinyproxy, microsocks): adding, checking, assigning, importing, exporting, and what the page
shows when a proxy dies — never a proxy password."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from codex_fake import FakeCodexThread
from tests.browser.conftest import PHONE, OpenDashboard, settled
from tests.support.accounts import add
from tests.support.proxy import ProxyProcess
from tests.support.proxy_servers import Microsocks, Tinyproxy
from tests.support.servers import ip_echo_server

StartProxy = Callable[..., ProxyProcess]
Snap = Callable[[Page, str], None]
TINY_PASSWORD, SOCKS_PASSWORD = "tp.secret_9", "ms:secret/7"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Tinyproxy, Microsocks, str]]:
    with (ip_echo_server() as echo, Tinyproxy(tmp_path / "tiny", "127.0.0.2", "tp-user", TINY_PASSWORD) as tiny,
          Microsocks(tmp_path / "socks", "127.0.0.3", "ms-user", SOCKS_PASSWORD) as socks):  # fmt: skip
        yield tiny, socks, f"http://127.0.0.1:{echo.port}/?format=json"


def proxy_row(page: Page, text: str) -> Any:
    return page.locator("#proxies-body tr").filter(has_text=text)


def account_row(page: Page, account_id: str) -> Any:
    return page.locator(f'#assign-body tr[data-id="{account_id}"]')


def no_secret_on(page: Page) -> None:
    html = page.content()
    assert TINY_PASSWORD not in html and SOCKS_PASSWORD not in html and "tp-user" not in html


def test_manage_proxies_and_watch_a_dead_one(start_proxy: StartProxy, fake: FakeCodexThread, open_dashboard: OpenDashboard,
                                             servers: tuple[Tinyproxy, Microsocks, str], tmp_path: Path, snap: Snap) -> None:  # fmt: skip
    tiny, socks, echo = servers
    proxy = start_proxy(proxies={"check_url": echo, "check_interval_minutes": 60, "check_timeout_seconds": 5})
    one, two = add(proxy, "acc-one", label="one")["id"], add(proxy, "acc-two", label="two")["id"]
    page = open_dashboard(proxy, "/dashboard/proxies")
    expect(page.locator("#proxies-empty")).to_be_visible()
    expect(account_row(page, one).locator("select.mode")).to_have_value("default")

    page.click("#add-open")
    form = page.locator("#proxy-form")
    form.locator("[name=name]").fill("tiny")
    form.locator("[name=scheme]").select_option("http")
    form.locator("[name=host]").fill("127.0.0.1")
    form.locator("[name=port]").fill(str(tiny.port))
    form.locator("[name=username]").fill("tp-user")
    form.locator("[name=password]").fill(TINY_PASSWORD)
    page.click("#proxy-save")
    expect(page.locator(".toast.ok")).to_contain_text("Added tiny")
    row = proxy_row(page, "tiny")
    row.locator("[data-action=check]").click()
    expect(row.locator(".status .badge")).to_have_text("Healthy")
    expect(row.locator(".exit-ip")).to_have_text("127.0.0.2")
    expect(row).to_contain_text("http://tp•••:••••••@127.0.0.1")

    page.click("#import-open")
    page.fill("#import-text", f"# SOCKS\nsocks5://ms-user:{SOCKS_PASSWORD.replace(':', '%3A').replace('/', '%2F')}@127.0.0.1:{socks.port}\nnot-a-proxy\n")
    page.click("#import-submit")
    expect(page.locator(".toast.bad")).to_contain_text("1 added, 0 updated, 1 failed")
    page.click("#check-all")
    expect(proxy_row(page, f"127.0.0.1:{socks.port}").locator(".exit-ip")).to_have_text("127.0.0.3")

    account_row(page, one).locator("select.mode").select_option(label="Proxy: tiny")
    expect(account_row(page, one).locator(".through")).to_have_text("tiny")
    page.check("#assign-all")
    account_row(page, one).locator("input.select").uncheck()
    page.select_option("#assign-mode", "automatic")
    page.click("#assign-apply")
    expect(account_row(page, two).locator("select.mode")).to_have_value("automatic")
    expect(account_row(page, two).locator(".through")).to_have_text(f"127.0.0.1:{socks.port}")  # the least used
    expect(proxy_row(page, "tiny").locator("td").nth(5)).to_have_text("1")
    no_secret_on(page)
    snap(page, "healthy")

    tiny.kill()
    page.click("#check-all")
    expect(proxy_row(page, "tiny").locator(".status .badge")).to_have_text("Unreachable")
    expect(proxy_row(page, "tiny").locator(".error-text")).to_contain_text("connect")
    expect(account_row(page, one).locator(".status .badge")).to_have_text("Proxy unavailable")
    expect(account_row(page, one).locator(".through")).to_contain_text("its proxy tiny is unreachable")
    expect(account_row(page, two).locator(".status .badge")).to_have_text("Active")
    snap(page, "dead-proxy")
    accounts_page = open_dashboard(proxy, "/")
    badge = accounts_page.locator(f'#accounts-body tr[data-id="{one}"] .status .badge').first
    expect(badge).to_have_text("Proxy unavailable")
    assert "tiny is unreachable" in (badge.get_attribute("title") or "")

    def export(secrets: bool) -> dict[str, Any]:
        page.click("#export-open")
        page.check(f"#export-dialog input[value={'yes' if secrets else 'no'}]")
        expect(page.locator("#export-warning")).to_be_visible() if secrets else expect(page.locator("#export-warning")).to_be_hidden()
        with page.expect_download() as download:
            page.click("#export-download")
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        return json.loads(path.read_text())

    plain = export(secrets=False)
    assert TINY_PASSWORD not in json.dumps(plain) and all(p["credentials_omitted"] for p in plain["proxies"])
    full = export(secrets=True)
    assert {p.get("password") for p in full["proxies"]} == {TINY_PASSWORD, SOCKS_PASSWORD}

    proxy_row(page, "tiny").locator("[data-action=delete]").click()
    page.click("#confirm-yes")
    expect(page.locator(".toast.bad").filter(has_text="accounts use this proxy")).to_have_count(1)  # "one" is pinned to it
    expect(page.locator("#proxies-body tr")).to_have_count(2)


def test_edit_keeps_the_password_and_the_page_works_on_a_phone_in_chinese(start_proxy: StartProxy, fake: FakeCodexThread,
                                                                          open_dashboard: OpenDashboard,
                                                                          servers: tuple[Tinyproxy, Microsocks, str]) -> None:  # fmt: skip
    tiny, _, echo = servers
    proxy = start_proxy(proxies={"check_url": echo, "check_interval_minutes": 60, "check_timeout_seconds": 5})
    added = proxy.api("POST", "/admin/proxies", json={"url": f"http://tp-user:{TINY_PASSWORD}@127.0.0.1:1", "name": "wrong port"})
    assert added.status_code == 201
    page = open_dashboard(proxy, "/dashboard/proxies", viewport=PHONE, locale="zh-CN")
    expect(page.locator("h1")).to_have_text("代理")
    row = proxy_row(page, "wrong port")
    row.locator("[data-action=check]").click()
    expect(row.locator(".status .badge")).to_have_text("不可达")
    row.locator("[data-action=edit]").click()
    expect(page.locator("#password-hint")).to_be_visible()
    expect(page.locator("#proxy-form [name=password]")).to_have_value("")
    page.fill("#proxy-form [name=port]", str(tiny.port))
    page.fill("#proxy-form [name=name]", "fixed")
    page.click("#proxy-save")
    row = proxy_row(page, "fixed")
    row.locator("[data-action=check]").click()
    expect(row.locator(".status .badge")).to_have_text("正常")  # tinyproxy took the kept credentials
    page.fill("#check-form [name='proxies.check_interval_minutes']", "15")
    page.click("#check-form button[type=submit]")
    expect(page.locator("#check-form .result")).to_have_text("已保存，此后的检测将使用新设置。")
    assert proxy.api("GET", "/admin/settings").json()["values"]["proxies.check_interval_minutes"] == 15
    page.reload()
    settled(page)
    expect(page.locator("#check-form [name='proxies.check_interval_minutes']")).to_have_value("15")
