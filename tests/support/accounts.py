"""Helpers for account-pool tests: adding fake-backed accounts, reading what served, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from codex_fake import FakeCodexThread, mint_access_token, mint_refresh_token
from tests.support.proxy import ProxyProcess

T = TypeVar("T")


def add(proxy: ProxyProcess, account_id: str, plan: str = "plus", *, refresh: bool = True, expires_in: float = 3600,
        label: str | None = None) -> dict[str, Any]:  # fmt: skip
    """An account the fake accepts: chatgpt account id ``account_id``, email ``<id>@example.com``."""
    email = f"{account_id}@example.com"
    token = mint_access_token(account_id=account_id, plan=plan, email=email, expires_in=expires_in)
    rt = mint_refresh_token(account_id, plan=plan, email=email) if refresh else None
    return proxy.add_account(token, rt, label)


def served(fake: FakeCodexThread, path: str = "/codex/responses") -> list[str | None]:
    """Which chatgpt account each upstream request of ``path`` was made with, in order."""
    return [r["account"] for r in fake.requests(path)]


def account(proxy: ProxyProcess, chatgpt_account_id: str, quota: bool = False) -> dict[str, Any]:
    path = "/auth/accounts?quota=true" if quota else "/auth/accounts"
    response = proxy.api("GET", path)
    assert response.status_code == 200, response.text
    return next(a for a in response.json()["accounts"] if a["chatgpt_account_id"] == chatgpt_account_id)


def wait_for(probe: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy (then return it) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def chat(client: Any, text: str, model: str = "gpt-5.4", **kwargs: Any) -> str:
    """One non-streamed chat turn; returns the answer text."""
    completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kwargs)
    return completion.choices[0].message.content or ""


def chat_stream(client: Any, text: str, model: str = "gpt-5.4") -> str:
    chunks = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
