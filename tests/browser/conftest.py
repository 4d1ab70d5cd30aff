"""The dashboard in a real headless Chromium (Debian's, driven by Playwright; the Makefile installs
it) against the real proxy. Every page a test opens is checked for script errors and failed
requests at the end, and a screenshot of it is kept in test-artifacts/screenshots/."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.support.proxy import ROOT, ProxyProcess

CHROMIUM = os.environ.get("CODEX_PROXY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

OpenDashboard = Callable[..., Page]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Per module: Playwright's sync API keeps an event loop on this thread while it runs, which
    the suite's later asyncio.run() calls must not find."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's (or set CODEX_PROXY_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def artifact_name(request: pytest.FixtureRequest, label: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^\w.-]+", "_", request.node.name)
    return ARTIFACTS / f"{test}-{label}.png"


class Browsing:
    """New isolated browser contexts (own cookies and storage) for one test, and what went wrong
    on their pages: script errors, console errors and failed requests, except those the test
    allows (a request it has the browser make and fail on purpose)."""

    def __init__(self, chromium: Browser) -> None:
        self._chromium = chromium
        self.contexts: list[BrowserContext] = []
        self.pages: list[Page] = []
        self.problems: list[str] = []
        self.allowed: list[str] = []

    def allow(self, text: str) -> None:
        self.allowed.append(text)

    def _problem(self, text: str) -> None:
        if not any(part in text for part in self.allowed):
            self.problems.append(text)

    def _watch(self, page: Page) -> None:
        self.pages.append(page)
        page.on("pageerror", lambda error: self._problem(f"script error: {error}"))
        # "Failed to load resource" is Chromium noting a 4xx/5xx answer; the page shows those itself.
        page.on("console", lambda message: message.type == "error" and "Failed to load resource" not in message.text
                and self._problem(f"console error: {message.text}"))  # fmt: skip
        page.on("requestfailed", lambda req: "ERR_ABORTED" not in str(req.failure)  # downloads, closed pop-ups
                and self._problem(f"request failed: {req.url} ({req.failure})"))  # fmt: skip

    def new_context(self, **options: Any) -> BrowserContext:
        context = self._chromium.new_context(viewport=options.pop("viewport", LAPTOP), locale=options.pop("locale", "en-US"),
                                             accept_downloads=True, **options)  # fmt: skip
        context.set_default_timeout(15_000)
        context.on("page", self._watch)
        self.contexts.append(context)
        return context


@pytest.fixture
def browsing(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[Browsing]:
    session = Browsing(chromium)
    yield session
    for index, page in enumerate(session.pages):
        if not page.is_closed() and page.url.startswith("http"):
            page.screenshot(path=artifact_name(request, f"page{index}"), full_page=True)
    for context in session.contexts:
        context.close()
    assert not session.problems, "\n".join(session.problems)


def settled(page: Page) -> Page:
    """Wait until the page's script has set up its controls (a page without one, the login form, at once)."""
    page.wait_for_load_state("domcontentloaded")
    if page.locator("#boot").count():
        page.locator("body[data-ready=true]").wait_for(state="attached")
    return page


@pytest.fixture
def open_dashboard(browsing: Browsing) -> OpenDashboard:
    """``open_dashboard(proxy, "/dashboard/usage")``: a new context on this machine, at that page."""

    def open_page(proxy: ProxyProcess, path: str = "/", origin: str | None = None, **options: Any) -> Page:
        page = browsing.new_context(**options).new_page()
        page.goto((origin or proxy.origin) + path)
        return settled(page)

    return open_page


@pytest.fixture
def snap(request: pytest.FixtureRequest) -> Callable[[Page, str], None]:
    """Keep a screenshot of this moment of the test."""
    return lambda page, label: page.screenshot(path=artifact_name(request, label), full_page=True)
