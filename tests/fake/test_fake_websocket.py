"""The fake's WebSocket beyond a turn: the rate-limit event each turn, Cloudflare's cookies on the
upgrade, refused upgrades, and cutting sockets (what the proxy's WebSocket tests stand on)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from codex_fake import FakeCodexThread
from codex_fake import faults as sc
from tests.fake.test_fake_backend import _fresh, auth, base, body, fake, post, run, ws_frame, ws_headers, ws_turn

__all__ = ["_fresh", "base", "fake"]  # the fixtures, shared with test_fake_backend.py


def test_ws_rate_limit_event_follows_usage_and_upgrade_counts(fake: FakeCodexThread, base: str) -> None:
    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str], dict[str, int]]:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(base + "/backend-api/codex/responses", headers=ws_headers("acc-rl")) as ws:
                upgrade = dict(ws._response.headers)  # type: ignore[union-attr]
                fake.set_usage("acc-rl", primary_used=12.5)
                first = await ws_turn(ws, ws_frame())
                fake.set_usage("acc-rl", primary_used=64.0, secondary_used=3.0)
                second = await ws_turn(ws, ws_frame())
                return first, second, upgrade, fake.stats()

    first, second, upgrade, stats = run(go())
    assert upgrade["x-codex-primary-used-percent"] == "0.0"
    assert first[0]["type"] == "codex.rate_limits" and first[0]["rate_limits"]["primary"]["used_percent"] == 12.5
    assert second[0]["rate_limits"]["primary"]["used_percent"] == 64.0 and second[0]["rate_limits"]["secondary"]["used_percent"] == 3.0
    assert stats["websocket_upgrades"] == 1 and stats["websockets_open"] == 1
    assert fake.stats()["websockets_open"] == 0


def test_ws_upgrade_sets_cookies_only_when_missing(fake: FakeCodexThread, base: str) -> None:
    fake.configure(set_cookies=True)

    async def go(cookie: str | None) -> list[str]:
        headers = ws_headers("acc-cj")
        if cookie:
            headers["Cookie"] = cookie
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(base + "/backend-api/codex/responses", headers=headers) as ws:
                return ws._response.headers.getall("Set-Cookie", [])  # type: ignore[union-attr]

    fresh = run(go(None))
    assert any(c.startswith("cf_clearance=clear-acc-cj;") and "Max-Age=31536000" in c for c in fresh)
    assert any(c.startswith("__cf_bm=") and "Max-Age=1800" in c for c in fresh)
    assert not any("Domain=" in c for c in fresh)  # served on 127.0.0.1: host-only, as .chatgpt.com would be refused
    assert run(go("__cf_bm=x; cf_clearance=clear-acc-cj")) == []
    assert [c.split("=")[0] for c in run(go("__cf_bm=x; cf_clearance=clear-someone-else"))] == ["cf_clearance"]
    handshakes = [r for r in fake.requests("/codex/responses") if r["method"] == "GET"]
    assert handshakes[-1]["headers"]["cookie"] == "__cf_bm=x; cf_clearance=clear-someone-else"  # recorded as sent


def test_ws_refusal_and_cloudflare_blocks_meet_the_upgrade(fake: FakeCodexThread, base: str) -> None:
    async def status() -> int:
        async with aiohttp.ClientSession() as s:
            try:
                async with s.ws_connect(base + "/backend-api/codex/responses", headers=ws_headers("acc-no")):
                    return 101
            except aiohttp.WSServerHandshakeError as err:
                return err.status

    fake.configure(websocket_refusal=426)
    assert run(status()) == 426
    fake.configure(websocket_refusal=0)
    fake.fault("acc-no", sc.empty_404(), times=1)
    assert run(status()) == 404  # Cloudflare answers the upgrade as any request…
    assert post(base, body(), auth("acc-no")).status_code == 404  # …and the fault is still there for HTTP
    assert run(status()) == 101


def test_ws_drop_cuts_the_sockets_of_one_account(fake: FakeCodexThread, base: str) -> None:
    async def go() -> tuple[int, bool, bool]:
        async with aiohttp.ClientSession() as s:
            url = base + "/backend-api/codex/responses"
            async with s.ws_connect(url, headers=ws_headers("acc-cut")) as cut, s.ws_connect(url, headers=ws_headers("acc-kept")) as kept:
                dropped = fake.drop_websockets("acc-cut")
                msg = await asyncio.wait_for(cut.receive(), 5)
                frames = await ws_turn(kept, ws_frame())
                return dropped, msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR), frames[-1]["type"] == "response.completed"

    assert run(go()) == (1, True, True)
