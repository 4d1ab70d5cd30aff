"""Per-account cookie jars: what a browser would keep and send back, and nothing more."""

from __future__ import annotations

import time
from pathlib import Path

import sqlite_utils

from core.accounts.cookies import MAX_COOKIES, CookieJar, parse_set_cookie
from core.accounts.model import Account
from core.store.migrations import migrations

NOW = 1_767_225_600.0
API = "https://chatgpt.com/backend-api/codex/responses"


def test_cloudflare_cookies_are_kept_and_sent_back_to_the_same_host() -> None:
    jar = CookieJar()
    changed = jar.update([
        "__cf_bm=abc.def-1; path=/; expires=Thu, 01-Jan-2026 00:30:00 GMT; domain=.chatgpt.com; HttpOnly; Secure; SameSite=None",
        "cf_clearance=xyz; Path=/; Max-Age=31536000; Domain=.chatgpt.com; Secure",
    ], API, NOW)  # fmt: skip
    assert changed and jar.names() == ["__cf_bm", "cf_clearance"]
    assert jar.header("wss://chatgpt.com/backend-api/codex/responses", NOW) == "__cf_bm=abc.def-1; cf_clearance=xyz"
    assert jar.header("https://ab.chatgpt.com/backend-api/wham/usage", NOW) == "__cf_bm=abc.def-1; cf_clearance=xyz"
    assert jar.header("http://chatgpt.com/backend-api/x", NOW) is None  # Secure: not over plain http
    assert jar.header("https://example.com/", NOW) is None
    assert jar.header(API, NOW + 1801) == "cf_clearance=xyz"  # __cf_bm expired at 00:30
    assert not jar.update(["cf_clearance=xyz; Path=/; Max-Age=31536000; Domain=.chatgpt.com; Secure"], API, NOW)


def test_host_only_cookies_paths_and_loopback() -> None:
    jar = CookieJar()
    jar.update(["a=1; Path=/; Secure", "b=2; Path=/backend-api/codex", "c=3; Path=/other", "d=4"], "http://127.0.0.1:9/backend-api/codex/responses", NOW)
    # Loopback counts as secure (as browsers treat it); "b" matches the path, "c" does not.
    # "d" has no Path: it defaults to the answering URL's directory, /backend-api/codex.
    assert jar.header("http://127.0.0.1:9/backend-api/codex/responses", NOW) == "b=2; d=4; a=1"
    assert jar.header("http://127.0.0.2:9/backend-api/codex/responses", NOW) is None  # host-only
    assert jar.header("http://127.0.0.1:9/backend-api/codexy", NOW) == "a=1"  # a path matches on whole segments


def test_refused_and_deleting_cookies() -> None:
    host = "chatgpt.com"
    assert parse_set_cookie("x=1; Domain=evil.com", host, "/", NOW) is None  # not this host's domain to set
    assert parse_set_cookie("x=1; Domain=0.0.1", "127.0.0.1", "/", NOW) is None  # no domain cookies on an IP
    assert parse_set_cookie("=nameless", host, "/", NOW) is None and parse_set_cookie("garbage", host, "/", NOW) is None
    jar = CookieJar()
    jar.update(["x=1; Path=/"], API, NOW)
    assert jar.update(["x=gone; Path=/; Max-Age=0"], API, NOW) and not jar  # Max-Age=0 deletes it
    jar.update([f"n{i}=v; Path=/" for i in range(MAX_COOKIES + 5)], API, NOW)
    assert len(jar) == MAX_COOKIES and "n0" not in jar.names()  # the oldest go first


def test_a_jar_round_trips_through_its_row_and_drops_the_expired() -> None:
    account = Account(id="acct_1", chatgpt_account_id="acc-1", access_token="t")
    account.cookies.update(["keep=1; Max-Age=100000; Secure", "soon=2; Max-Age=1"], API)
    row = account.to_row()
    assert "keep" in row["cookies"] and account.public().get("cookies") is None  # never shown by the API
    restored = Account.from_row(row)
    assert restored.cookies == account.cookies
    assert CookieJar.from_json("not json") == CookieJar() and CookieJar.from_json(None) == CookieJar()
    assert "soon" not in (account.cookies.to_json(now=time.time() + 10) or "")


def test_m007_moves_a_stored_clearance_into_the_jar(tmp_path: Path) -> None:
    db = sqlite_utils.Database(tmp_path / "old.db")
    migrations.apply(db, stop_before="m007_account_cookie_jars")
    db["accounts"].insert({"id": "acct_a", "status": "active", "cf_clearance": "clear-a"})
    db["accounts"].insert({"id": "acct_b", "status": "active"})
    db["account_proxies"].insert({"account_id": "acct_a", "mode": "direct"})
    migrations.apply(db)
    assert "cf_clearance" not in db["accounts"].columns_dict
    assert db["account_proxies"].count == 1  # altered in place: nothing referencing accounts went
    a, b = (Account.from_row({**db["accounts"].get(i), "chatgpt_account_id": "x", "access_token": "t"}) for i in ("acct_a", "acct_b"))
    assert a.cookies.header(API) == "cf_clearance=clear-a" and b.cookies.header(API) is None
