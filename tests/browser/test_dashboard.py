"""The dashboard, clicked through in Chromium against the real proxy and the fake backend."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from playwright.sync_api import Page, expect

from codex_fake import FakeCodexThread, mint_refresh_token
from codex_fake import faults as sc
from tests.browser.conftest import PHONE, Browsing, OpenDashboard, settled
from tests.conftest import PROXY_KEY, proxy_config
from tests.support.accounts import add, chat, chat_stream, served, wait_for
from tests.support.proxy import ProxyProcess
from tests.support.servers import free_port, non_loopback_address

StartProxy = Callable[..., ProxyProcess]
Snap = Callable[[Page, str], None]


def client_of(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30)


def proxy_with(start_proxy: StartProxy, *account_ids: str) -> tuple[ProxyProcess, openai.OpenAI]:
    """A private proxy (its own request log and settings) with these fake-backed accounts."""
    proxy = start_proxy()
    for account_id in account_ids:
        add(proxy, account_id)
    return proxy, client_of(proxy)


def rows(page: Page) -> Any:
    return page.locator("#accounts-body tr")


def row_of(page: Page, text: str) -> Any:
    return rows(page).filter(has_text=text)


# --- first run and adding accounts ------------------------------------------------------------------


def test_first_run_login_with_chatgpt(start_proxy: StartProxy, fake: FakeCodexThread, open_dashboard: OpenDashboard, snap: Snap) -> None:
    """No account yet: "Log in with ChatGPT" goes through the (fake) OpenAI login in a new tab and
    back to the proxy's callback, and the account appears in the page that stayed open."""
    proxy = start_proxy(auth={"oauth_redirect_uri": f"http://localhost:{free_port()}/auth/callback"})
    fake.configure(next_login={"account_id": "acc-browser", "plan": "pro", "email": "browser@example.com"})
    page = open_dashboard(proxy)
    expect(page.locator("#welcome")).to_be_visible()
    expect(page.locator("#accounts-card")).to_be_hidden()
    snap(page, "first-run")
    page.evaluate("window.stillTheSamePage = true")
    with page.context.expect_page() as opened:
        page.click("#login-start")
    login_tab = opened.value
    expect(login_tab.locator("h1")).to_have_text("Logged in")  # the proxy's callback listener answered
    expect(login_tab.locator("body")).to_contain_text("browser@example.com")
    expect(row_of(page, "browser@example.com")).to_have_count(1)
    expect(row_of(page, "browser@example.com").locator(".badge.active")).to_have_text("Active")
    expect(page.locator("#welcome")).to_be_hidden()
    expect(page.locator(".toast.ok")).to_contain_text("browser@example.com")
    assert page.evaluate("window.stillTheSamePage") is True  # no reload
    assert [(a["chatgpt_account_id"], a["plan"]) for a in proxy.accounts()] == [("acc-browser", "pro")]


def test_paste_a_token_a_redirect_url_or_use_a_device_code(start_proxy: StartProxy, fake: FakeCodexThread,
                                                           open_dashboard: OpenDashboard, browsing: Browsing) -> None:  # fmt: skip
    port = free_port()
    proxy = start_proxy(auth={"oauth_redirect_uri": f"http://localhost:{port}/auth/callback"})
    page = open_dashboard(proxy)

    # A refresh token: the proxy redeems it at the (fake) token endpoint.
    page.click("#tab-paste-button")
    page.fill("#paste-value", mint_refresh_token("acc-rt", plan="plus", email="rt@example.com"))
    page.fill("#paste-label", "from a refresh token")
    page.click("#paste-submit")
    expect(row_of(page, "from a refresh token")).to_have_count(1)
    assert fake.refresh_count("acc-rt") == 1

    # The proxy on another machine: the login's last page (localhost:<port>) does not load there,
    # so the user pastes its address.
    browsing.allow(f"localhost:{port}")
    fake.configure(next_login={"account_id": "acc-pasted", "plan": "team", "email": "pasted@example.com"})
    callback = f"http://localhost:{port}/"
    page.context.route(callback + "**", lambda route: route.abort("connectionrefused"))
    page.click("#add-toggle")
    page.click("#tab-login-button")
    with page.context.expect_event("request", lambda request: request.url.startswith(callback)) as redirect:
        page.click("#login-start")
    expect(page.locator("#login-state")).to_have_text("Waiting for you to finish logging in…")
    page.fill("#login-url", redirect.value.url)
    page.click("#login-url-submit")
    expect(row_of(page, "pasted@example.com")).to_have_count(1)

    # The device code: shown here, approved at OpenAI (the fake) from any device.
    fake.configure(next_login={"account_id": "acc-device", "plan": "plus", "email": "device@example.com"})
    page.click("#add-toggle")
    page.click("#tab-device-button")
    page.click("#device-start")
    code = page.locator("#device-code")
    expect(code).to_have_text(re.compile(r"^\w+-\w+$"))
    assert fake.approve_device(code.inner_text())
    expect(row_of(page, "device@example.com")).to_have_count(1, timeout=20_000)
    assert {a["chatgpt_account_id"] for a in proxy.accounts()} == {"acc-rt", "acc-pasted", "acc-device"}


# --- the accounts table -----------------------------------------------------------------------------


def test_the_table_shows_every_account_state(start_proxy: StartProxy, fake: FakeCodexThread, open_dashboard: OpenDashboard,
                                             snap: Snap) -> None:  # fmt: skip
    """One account per status, each reached the way it happens in use (the backend's answers)."""
    proxy = start_proxy()
    add(proxy, "acc-ok", label="healthy")
    off = add(proxy, "acc-off", label="switched off")
    add(proxy, "acc-limited", label="quota used up")
    add(proxy, "acc-banned", label="refused")
    add(proxy, "acc-cf", label="challenged")
    add(proxy, "acc-expired", label="logged out", refresh=False)
    dead = add(proxy, "acc-dead-rt", label="dead refresh token")
    proxy.api("POST", "/auth/accounts/batch-status", json={"ids": [off["id"]], "status": "disabled"})
    fake.fault("acc-limited", sc.usage_limit_429(resets_in=5400))
    fake.fault("acc-banned", sc.ban_403())
    fake.fault("acc-cf", sc.cloudflare_403())
    fake.fault("acc-expired", sc.token_expired_401())
    fake.fault("acc-dead-rt", sc.refresh_error(401, "refresh_token_reused"))
    assert proxy.api("POST", f"/auth/accounts/{dead['id']}/refresh").status_code == 409
    fake.set_usage("acc-ok", primary_used=42.0, secondary_used=7.0)
    expected = {"healthy": "active", "switched off": "disabled", "quota used up": "rate_limited", "refused": "banned",
                "challenged": "cooldown", "logged out": "expired"}  # fmt: skip

    def statuses() -> dict[str, str]:
        return {a["label"]: a["status"] for a in proxy.accounts()}

    client = client_of(proxy)
    turns = iter(range(100))

    def one_more_turn() -> bool:
        try:  # a new conversation each time: no affinity to the account that served the last
            chat(client, f"who serves {next(turns)}?")
        except openai.APIError:
            pass  # a turn tries a few accounts only; all of them may have been faulted ones
        return all(statuses()[label] == status for label, status in expected.items())

    wait_for(one_more_turn, timeout=30, what="every faulted account to be tried once")
    healthy = next(a["id"] for a in proxy.accounts() if a["label"] == "healthy")
    assert proxy.api("GET", f"/auth/accounts/{healthy}/quota").status_code == 200

    page = open_dashboard(proxy)
    for label, status in expected.items():
        row = row_of(page, label)
        expect(row).to_have_attribute("data-status", status)
        expect(row.locator(f".badge.{status}")).to_be_visible()
    expect(row_of(page, "dead refresh token").locator(".badge.needs_login")).to_have_text("Needs login")
    expect(row_of(page, "quota used up").locator(".status")).to_contain_text("until")
    expect(row_of(page, "refused").locator(".badge.banned")).to_have_attribute("title", re.compile("403"))
    meters = row_of(page, "healthy").locator("[role=meter]")
    expect(meters).to_have_count(2)
    assert [meters.nth(i).get_attribute("aria-valuenow") for i in range(2)] == ["42", "7"]
    expect(row_of(page, "healthy").locator("td.requests")).not_to_have_text("0")
    expect(page.locator("#status-chips")).to_contain_text("1 Banned")
    snap(page, "states")

    # Usable on a phone: the rows become cards and nothing runs off the side.
    phone = open_dashboard(proxy, viewport=PHONE)
    expect(row_of(phone, "healthy")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    snap(phone, "phone")


def test_batch_and_row_actions(pool_proxy: ProxyProcess, pool_client: openai.OpenAI, fake: FakeCodexThread,
                               open_dashboard: OpenDashboard) -> None:  # fmt: skip
    for name in ("acc-b1", "acc-b2", "acc-b3"):
        add(pool_proxy, name)
    page = open_dashboard(pool_proxy)
    expect(rows(page)).to_have_count(3)
    row_of(page, "acc-b1").locator("input.select").check()
    row_of(page, "acc-b2").locator("input.select").check()
    expect(page.locator("#batch-count")).to_have_text("2 selected")
    page.click("#batch-bar [data-batch=disabled]")
    expect(row_of(page, "acc-b1")).to_have_attribute("data-status", "disabled")
    expect(row_of(page, "acc-b2")).to_have_attribute("data-status", "disabled")
    for i in range(3):
        chat(pool_client, f"only b3 {i}")
    assert served(fake) == ["acc-b3"] * 3

    row_of(page, "acc-b2").locator("[data-action=enable]").click()
    expect(row_of(page, "acc-b2")).to_have_attribute("data-status", "active")
    row_of(page, "acc-b3").locator("[data-action=delete]").click()
    page.click("#confirm-yes")
    expect(rows(page)).to_have_count(2)

    page.check("#select-all")
    expect(page.locator("#batch-count")).to_have_text("2 selected")
    page.click("#batch-bar [data-batch=delete]")
    expect(page.locator("dialog.confirm")).to_contain_text("Delete 2 account(s)?")
    page.click("#confirm-yes")
    expect(page.locator("#welcome")).to_be_visible()
    assert pool_proxy.accounts() == []


def test_check_all_shows_progress_and_the_quota(pool_proxy: ProxyProcess, fake: FakeCodexThread, open_dashboard: OpenDashboard) -> None:
    for i, used in enumerate((12.0, 55.0, 97.0)):
        add(pool_proxy, f"acc-q{i}")
        fake.set_usage(f"acc-q{i}", primary_used=used, secondary_used=used / 2)
    page = open_dashboard(pool_proxy)
    expect(rows(page)).to_have_count(3)
    page.click("#check-all")
    expect(page.locator("#progress-text")).to_have_text("Checked 3 account(s), 0 with an error")
    assert len(fake.requests("/wham/usage")) >= 3
    for i, (used, level) in enumerate(((12, ""), (55, ""), (97, "bad"))):
        bar = row_of(page, f"acc-q{i}").locator("[role=meter]").first
        expect(bar).to_have_attribute("aria-valuenow", str(used))
        if level:
            expect(bar).to_have_class(f"bar {level}")


def test_export_and_import_round_trip(pool_proxy: ProxyProcess, fake: FakeCodexThread, open_dashboard: OpenDashboard,
                                      tmp_path: Path) -> None:  # fmt: skip
    add(pool_proxy, "acc-x1", label="first")
    add(pool_proxy, "acc-x2", plan="pro", refresh=False, label="second")
    page = open_dashboard(pool_proxy)
    expect(rows(page)).to_have_count(2)

    def export(kind: str) -> dict[str, Any]:
        page.click("#export-open")
        expect(page.locator("#export-warning")).to_contain_text("Whoever has it can use these ChatGPT accounts")
        page.check(f"#export-dialog input[value={kind}]")
        with page.expect_download() as download:
            page.click("#export-download")
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        return {"name": path.name, "path": path, "body": json.loads(path.read_text())}

    full = export("full")
    assert full["name"].startswith("codex-proxy-accounts-") and len(full["body"]["accounts"]) == 2
    assert all(entry["token"].startswith("eyJ") for entry in full["body"]["accounts"])
    minimal = export("minimal")
    assert [set(e) for e in minimal["body"]["accounts"]] == [{"refreshToken", "label"}]  # only acc-x1 has one

    pool_proxy.remove_all_accounts()
    page.reload()
    settled(page)
    expect(page.locator("#welcome")).to_be_visible()
    page.click("#tab-import-button")
    page.set_input_files("#import-file", str(full["path"]))
    page.click("#import-submit")
    expect(page.locator("#import-result")).to_have_text("Import finished: 2 added, 0 updated, 0 failed")
    expect(rows(page)).to_have_count(2)
    assert {(a["label"], a["plan"]) for a in pool_proxy.accounts()} == {("first", "plus"), ("second", "pro")}

    page.click("#add-toggle")
    page.click("#tab-import-button")
    page.fill("#import-text", "not json")
    page.click("#import-submit")
    expect(page.locator(".toast.bad")).to_contain_text("not valid JSON")


# --- settings reach the running proxy ----------------------------------------------------------------


def test_settings_change_the_running_proxy(start_proxy: StartProxy, fake: FakeCodexThread, open_dashboard: OpenDashboard,
                                           snap: Snap) -> None:  # fmt: skip
    proxy, client = proxy_with(start_proxy, "acc-s1", "acc-s2")
    page = open_dashboard(proxy, "/dashboard/settings")

    page.click("#alias-add")
    page.locator("#aliases .alias-from").last.fill("dash-alias")
    page.locator("#aliases .alias-to").last.fill("gpt-5.4-mini")
    page.click("#form-models button[type=submit]")
    expect(page.locator("#form-models .result")).to_have_text("Saved")
    chat(client, "through the alias", model="dash-alias")
    assert fake.requests("/codex/responses")[-1]["body"]["model"] == "gpt-5.4-mini"

    page.check("input[name='auth.rotation_strategy'][value=round_robin]")
    page.uncheck("input[name='auth.session_affinity']")
    page.click("#form-rotation button[type=submit]")
    expect(page.locator("#form-rotation .result")).to_have_text("Saved")
    assert yaml.safe_load((proxy.data_dir / "local.yaml").read_text())["auth"]["rotation_strategy"] == "round_robin"
    before = len(served(fake))
    for i in range(4):
        chat(client, f"turn {i}")
    taken = served(fake)[before:]
    assert sorted(taken) == ["acc-s1", "acc-s1", "acc-s2", "acc-s2"] and taken[0] != taken[1]  # alternating

    page.fill("input[name='model.default']", "no-such-model")
    page.click("#form-models button[type=submit]")
    expect(page.locator("#form-models .result")).to_contain_text("not a known model")

    page.check("input[name='ollama.enabled']")
    page.click("#form-ollama button[type=submit]")
    expect(page.locator("#form-ollama .result")).to_have_text("Saved. Restart the proxy to apply: ollama.enabled")
    expect(page.locator("#restart-banner")).to_be_visible()
    page.click("#form-ollama button[type=submit]")
    expect(page.locator("#form-ollama .result")).to_have_text("Nothing changed")
    page.reload()
    expect(page.locator("#restart-banner")).to_contain_text("ollama.enabled")
    snap(page, "settings")


# --- usage and logs from real requests --------------------------------------------------------------


def test_usage_charts_come_from_real_requests(start_proxy: StartProxy, fake: FakeCodexThread, open_dashboard: OpenDashboard,
                                              snap: Snap) -> None:  # fmt: skip
    proxy, client = proxy_with(start_proxy, "acc-u1", "acc-u2")
    for i in range(4):
        chat(client, f"plain {i}", model="gpt-5.4")
    for i in range(3):
        chat_stream(client, f"streamed {i}", model="gpt-5.4-mini")
    fake.fault("acc-u1", sc.usage_limit_429(resets_in=600))
    fake.fault("acc-u2", sc.usage_limit_429(resets_in=600))
    with pytest.raises(openai.RateLimitError):
        chat(client, "nobody left")
    wait_for(lambda: len(proxy.request_log("1=1")) == 8, what="8 logged requests")

    page = open_dashboard(proxy, "/dashboard/usage?hours=1")
    expect(page.locator("body")).to_have_attribute("data-loaded", "1")
    expect(page.locator("[data-stat=requests] .value")).to_have_text("8")
    expect(page.locator("[data-stat=errors] .value")).to_have_text("1")
    expect(page.locator("[data-stat=success] .value")).to_have_text("87.5%")
    for chart in ("requests", "tokens", "accounts", "models", "ttfb", "tps"):
        expect(page.locator(f"#chart-{chart} canvas")).to_have_count(1)
    assert drawn_pixels(page, "#chart-requests canvas") > 50  # the bars are there, not just the axes

    def column_sum(chart: str, column: int) -> int:
        page.locator(f"#chart-{chart} details").evaluate("details => { details.open = true; }")
        cells = page.locator(f"#chart-{chart} details tbody tr td:nth-child({column})").all_inner_texts()
        return sum(int(c.replace(",", "")) for c in cells if c.strip() not in ("", "—"))

    assert (column_sum("requests", 2), column_sum("requests", 3)) == (7, 1)  # succeeded, failed
    legend = page.locator("#chart-accounts .u-legend").inner_text()
    assert "acc-u1@example.com" in legend and "acc-u2@example.com" in legend
    models = page.locator("#bars-models .hbar")
    expect(models).to_have_count(2)
    expect(models.first).to_contain_text("gpt-5.4")
    expect(page.locator("#percentiles tbody tr").first.locator("td").last).to_have_text("7")
    snap(page, "usage")

    page.click("#range button[data-hours='24']")
    expect(page.locator("body")).to_have_attribute("data-loaded", "24")
    assert page.url.endswith("?hours=24")


def drawn_pixels(page: Page, canvas: str) -> int:
    """Pixels of the canvas in the first series' colour (the chart's data, not its grid)."""
    return page.evaluate(r"""(selector) => {
        const canvas = document.querySelector(selector);
        const probe = document.body.appendChild(document.createElement('span'));
        probe.style.color = 'var(--chart-1)';
        const [r, g, b] = getComputedStyle(probe).color.match(/\d+/g).map(Number);
        probe.remove();
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4) {
            if (Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40 && Math.abs(data[i + 2] - b) < 40 && data[i + 3] > 100) n++;
        }
        return n;
    }""", canvas)  # fmt: skip


def test_logs_filter_detail_bodies_and_errors(start_proxy: StartProxy, fake: FakeCodexThread, open_dashboard: OpenDashboard,
                                              snap: Snap) -> None:  # fmt: skip
    proxy, client = proxy_with(start_proxy, "acc-l1")
    chat(client, "one", model="gpt-5.4")
    chat(client, "two", model="gpt-5.4-mini")
    fake.fault("acc-l1", sc.usage_limit_429(resets_in=600), times=1)
    with pytest.raises(openai.RateLimitError):
        chat(client, "limited", model="gpt-5.4")
    add(proxy, "acc-l2")  # serves what comes next: acc-l1 waits for its quota now
    wait_for(lambda: len(proxy.request_log("1=1")) == 3, what="3 logged requests")

    page = open_dashboard(proxy, "/dashboard/logs")
    log_rows = page.locator("#log-body tr")
    expect(log_rows).to_have_count(3)
    expect(log_rows.first.locator(".status-code")).to_have_text("429")
    page.fill("#log-search", "mini")
    expect(log_rows).to_have_count(1)
    expect(log_rows.first).to_contain_text("gpt-5.4-mini")
    page.fill("#log-search", "")
    page.select_option("select[name=outcome]", "error")
    expect(log_rows).to_have_count(1)
    page.select_option("select[name=outcome]", "")
    expect(log_rows).to_have_count(3)

    log_rows.nth(1).click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-fields")).to_contain_text("/v1/chat/completions")
    expect(page.locator("#detail-no-body")).to_contain_text("Bodies are not kept")
    page.click("#detail button[value=close]")

    page.click("#tab-errors")
    group = page.locator(".error-group")
    expect(group).to_have_count(1)
    expect(group.locator(".count")).to_have_text("1×")
    expect(group.locator(".kind")).to_contain_text("429")
    expect(page.locator("#error-count")).to_have_text("1")

    settings = page.context.new_page()
    settings.goto(proxy.origin + "/dashboard/settings")
    settled(settings)
    settings.check("input[name='logs.capture_bodies']")
    settings.click("#form-logs button[type=submit]")
    expect(settings.locator("#form-logs .result")).to_have_text("Saved")
    chat_stream(client, "a prompt worth keeping", model="gpt-5.4")
    wait_for(lambda: len(proxy.request_log("1=1")) == 4, what="the new request logged")

    page.click("#tab-requests")
    expect(log_rows).to_have_count(4, timeout=10_000)  # live: the new request shows up by itself
    log_rows.first.click()
    expect(page.locator("#detail-request")).to_contain_text("a prompt worth keeping")
    expect(page.locator("#detail-response")).to_contain_text("data:")
    assert PROXY_KEY not in page.locator("#detail").inner_text()
    snap(page, "logs-detail")


# --- language, theme, the key -----------------------------------------------------------------------


def test_language_and_theme_switches_persist(pool_proxy: ProxyProcess, open_dashboard: OpenDashboard, snap: Snap) -> None:
    page = open_dashboard(pool_proxy)
    expect(page.locator("nav [data-nav=accounts]")).to_have_text("Accounts")
    page.select_option("#lang-switch", "zh")
    expect(page.locator("nav [data-nav=accounts]")).to_have_text("账号")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.click("nav [data-nav=usage]")
    settled(page)
    expect(page.locator("h1")).to_have_text("用量")
    expect(page.locator("[data-stat=requests] .label")).to_have_text("请求数")

    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.select_option("#theme-switch", "dark")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light != dark and dark == "rgb(14, 17, 23)"
    page.goto(pool_proxy.origin + "/dashboard/settings")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.locator("h1")).to_have_text("设置")
    snap(page, "zh-dark")

    other = open_dashboard(pool_proxy, locale="zh-CN")  # a new browser asking for Chinese gets it
    expect(other.locator("nav [data-nav=accounts]")).to_have_text("账号")


def test_connect_page_masks_the_key_until_asked(pool_proxy: ProxyProcess, open_dashboard: OpenDashboard, tmp_path: Path) -> None:
    page = open_dashboard(pool_proxy, "/dashboard/connect", permissions=["clipboard-read", "clipboard-write"])
    assert PROXY_KEY not in page.content()  # nowhere in the page, snippets included
    expect(page.locator("#api-key")).to_contain_text("•")
    page.click("#setup [aria-controls=recipe-codex]")
    expect(page.locator("#snippet-codex pre")).to_contain_text(f'base_url = "{pool_proxy.origin}/v1"')
    page.click("#snippet-codex .copy")
    expect(page.locator(".toast.ok")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert f'Authorization = "Bearer {PROXY_KEY}"' in copied and "•" not in copied
    assert PROXY_KEY not in page.locator("#snippet-codex pre").inner_text()  # still masked on screen
    page.click("#key-reveal")
    expect(page.locator("#api-key")).to_have_text(PROXY_KEY)
    expect(page.locator("#snippet-codex pre")).to_contain_text(PROXY_KEY)
    page.click("#key-reveal")
    expect(page.locator("#api-key")).not_to_contain_text(PROXY_KEY)
    expect(page.locator("#models-table tr[data-model='gpt-5.4'] td").nth(1)).to_have_text("272,000")

    page.click("#setup [aria-controls=recipe-proxy]")
    with page.expect_download() as download:
        page.click("#ca-download")
    saved = tmp_path / "ca.pem"
    download.value.save_as(saved)
    assert saved.read_text() == pool_proxy.ca_cert.read_text() and "PRIVATE KEY" not in saved.read_text()


# --- the login gate from another address ---------------------------------------------------------------


@pytest.fixture
def lan_proxy(fake: FakeCodexThread, tmp_path: Path) -> Any:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    config = proxy_config(fake, session={"ttl_minutes": 30, "login_attempts": 3})
    proxy = ProxyProcess(tmp_path / "lan", config, args=("--listen-host", "0.0.0.0")).start()
    yield proxy, f"http://{address}:{proxy.port}"
    proxy.stop()


def test_other_machines_log_in_and_are_limited(lan_proxy: Any, browsing: Browsing, snap: Snap) -> None:
    proxy, remote = lan_proxy
    add(proxy, "acc-gate")
    page = browsing.new_context().new_page()
    page.goto(remote + "/dashboard/usage")
    assert page.url == remote + "/dashboard/login?next=/dashboard/usage"
    expect(page.locator("#password")).to_be_visible()
    snap(page, "login")
    page.fill("#password", "wrong password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("Wrong password.")
    page.fill("#password", PROXY_KEY)
    page.click("#login-submit")
    expect(page.locator("h1")).to_have_text("Usage")
    assert page.url == remote + "/dashboard/usage"
    [cookie] = page.context.cookies()
    assert cookie["name"] == f"codex_proxy_session_{proxy.port}" and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert 29 * 60 < cookie["expires"] - time.time() <= 30 * 60  # session.ttl_minutes
    assert page.evaluate("document.cookie").count("codex_proxy_session") == 0  # scripts cannot read it
    expect(page.locator("#logout")).to_be_visible()

    # The session stands in for the key from this browser, and changes need its CSRF token.
    browsing.allow("csrf")
    status = page.evaluate("""async () => {
        const plain = await fetch('/auth/accounts/batch-status', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                  body: JSON.stringify({ids: [], status: 'disabled'})});
        const boot = JSON.parse(document.getElementById('boot').textContent);
        const tokened = await fetch('/auth/accounts/batch-status', {method: 'POST', body: JSON.stringify({ids: [], status: 'disabled'}),
                                    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': boot.csrf}});
        const listed = await fetch('/auth/accounts');
        return [plain.status, (await plain.json()).error.code, tokened.status, listed.status];
    }""")  # fmt: skip
    assert status == [403, "csrf_failed", 200, 200]
    assert httpx.get(remote + "/auth/accounts").status_code == 401  # without the cookie: the key, as before
    page.click("#logout")
    expect(page.locator("#password")).to_be_visible()
    assert page.context.cookies() == []

    guesser = browsing.new_context().new_page()
    guesser.goto(remote + "/")
    for attempt in range(2):
        guesser.fill("#password", f"guess {attempt}")
        guesser.click("#login-submit")
        expect(guesser.locator("#login-error")).to_have_text("Wrong password.")
    guesser.fill("#password", "guess 3")
    guesser.click("#login-submit")  # the third failure within the window (session.login_attempts: 3)
    expect(guesser.locator("#login-error")).to_contain_text("Too many failed attempts")
    guesser.fill("#password", PROXY_KEY)
    with guesser.expect_response(lambda r: r.url.endswith("/dashboard/login") and r.request.method == "POST") as answer:
        guesser.click("#login-submit")
    assert answer.value.status == 429 and int(answer.value.headers["retry-after"]) > 800
    expect(guesser.locator("#login-error")).to_contain_text("Too many failed attempts")
    assert guesser.context.cookies() == []

    local = browsing.new_context().new_page()  # this machine is not locked out, and needs no password
    local.goto(proxy.origin + "/")
    expect(local.locator("nav [data-nav=accounts]")).to_be_visible()
