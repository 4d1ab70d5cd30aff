"""The libcurl WebSocket client and the socket pool, against a real WebSocket server on loopback
(aiohttp): frames both ways, refusals, closes, back-pressure, pings, and no handle or descriptor
left behind."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from curl_cffi.curl import DEFAULT_CACERT

from core.upstream.handles import HandlePool, Limits, Profile, TransferError
from core.upstream.transfer import body_writer, callback_failed
from core.upstream.websocket import UpstreamSocket, WebSocketRefused
from core.upstream import wspool
from core.upstream.wspool import SocketPool

pytestmark = pytest.mark.timeout(60)

LIMITS = Limits(5, 10)
Handler = Callable[[web.Request, web.WebSocketResponse], Awaitable[None]]


class Server:
    """An aiohttp app whose WebSocket route runs ``handler``; ``refuse`` answers upgrades with a status."""

    def __init__(self, handler: Handler, refuse: int = 0) -> None:
        self.handler = handler
        self.refuse = refuse
        self.seen: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/ws", self._serve)
        self.runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"ws://127.0.0.1:{port}/ws"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        if self.refuse:
            return web.json_response({"detail": "no"}, status=self.refuse, headers={"x-why": "refused"})
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024, autoping=True)
        ws.headers["x-codex-turn-state"] = "ts_1"
        ws.set_cookie("cf_clearance", "c1", max_age=60)
        await ws.prepare(request)
        await self.handler(request, ws)
        return ws

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def handles() -> HandlePool:
    return HandlePool(DEFAULT_CACERT.encode(), 4, body_writer, callback_failed)


async def receive(sock: UpstreamSocket, timeout: float = 10) -> bytes | None:
    deadline = time.monotonic() + timeout
    while True:
        message = sock.next_message()
        if message is not None or sock.closed:
            return message
        await asyncio.wait_for(sock.wait(), max(0.01, deadline - time.monotonic()))


async def echo(request: web.Request, ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            if msg.data == "big":
                await ws.send_str("x" * (8 * 1024 * 1024))
            elif msg.data == "close":
                await ws.close(code=1000, message=b"bye")
            else:
                await ws.send_str(f"echo:{len(msg.data)}:{msg.data[:20]}")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_frames_both_ways_on_one_socket() -> None:
    async def scenario() -> None:
        server = Server(echo)
        url = await server.start()
        pool = handles()
        sock = await UpstreamSocket.open(pool, url, [("Authorization", "Bearer t"), ("OpenAI-Beta", "b")], LIMITS, Profile())
        assert sock.status == 101 and b"x-codex-turn-state: ts_1" in sock.head and b"cf_clearance=c1" in sock.head
        assert server.seen[0]["Authorization"] == "Bearer t" and server.seen[0]["Upgrade"].lower() == "websocket"
        for i in range(50):
            await sock.send(f"m{i}".encode())
        assert [await receive(sock) for _ in range(50)] == [f"echo:{len(f'm{i}')}:m{i}".encode() for i in range(50)]
        payload = b"y" * (5 * 1024 * 1024)  # several times the kernel's buffer: sent in pieces
        await sock.send(payload)
        assert await receive(sock) == b"echo:5242880:yyyyyyyyyyyyyyyyyyyy"
        await sock.send(b"big")
        assert await receive(sock) == b"x" * (8 * 1024 * 1024)  # one message from many reads
        assert pool.alive == 1
        sock.close()
        assert sock.closed and pool.alive == 0
        with pytest.raises(TransferError):
            await sock.send(b"late")
        await server.stop()

    run(scenario)


def test_refused_upgrade_and_no_server() -> None:
    async def scenario() -> None:
        server = Server(echo, refuse=426)
        url = await server.start()
        pool = handles()
        fds = open_fds()
        with pytest.raises(WebSocketRefused) as refused:
            await UpstreamSocket.open(pool, url, [], LIMITS, Profile())
        assert refused.value.status == 426 and b"x-why: refused" in refused.value.head
        await server.stop()
        with pytest.raises(TransferError) as failed:
            await UpstreamSocket.open(pool, url, [], LIMITS, Profile())
        assert not isinstance(failed.value, WebSocketRefused)
        assert pool.alive == 0 and open_fds() <= fds

    run(scenario)


def test_a_close_from_the_server_wakes_the_reader() -> None:
    async def scenario() -> None:
        server = Server(echo)
        url = await server.start()
        sock = await UpstreamSocket.open(handles(), url, [], LIMITS, Profile())
        await sock.send(b"close")
        assert await receive(sock) is None
        assert sock.closed and "closed by the server" in sock.close_reason
        await server.stop()

    run(scenario)


def test_a_socket_is_closed_only_on_its_own_loop() -> None:
    async def scenario() -> None:
        server = Server(echo)
        url = await server.start()
        sock = await UpstreamSocket.open(handles(), url, [], LIMITS, Profile())
        with pytest.raises(RuntimeError):
            await asyncio.to_thread(sock.close)  # a control-plane thread must hop to the loop instead
        assert not sock.closed
        await sock.send(b"still open")
        assert await receive(sock) == b"echo:10:still open"
        sock.close()
        await server.stop()

    run(scenario)


def test_an_unread_socket_stops_reading_past_high_water() -> None:
    async def flood(request: web.Request, ws: web.WebSocketResponse) -> None:
        await ws.receive()
        for i in range(400):
            await ws.send_str(f"{i:06d}" + "z" * 65_530)  # 400 × 64 KiB ≈ 25 MiB
        await ws.receive()

    async def scenario() -> None:
        server = Server(flood)
        url = await server.start()
        sock = await UpstreamSocket.open(handles(), url, [], LIMITS, Profile(), high_water=1 << 20)
        await sock.send(b"go")
        await asyncio.sleep(0.5)
        assert 0 < sock._pending <= (1 << 20) + 65_536 and not sock._reading  # the kernel holds the rest
        got = [await receive(sock) for _ in range(400)]
        assert [int(m[:6]) for m in got if m] == list(range(400))
        sock.close()
        await server.stop()

    run(scenario)


def test_pings_are_answered() -> None:
    async def scenario() -> None:
        server = Server(echo)
        url = await server.start()
        sock = await UpstreamSocket.open(handles(), url, [], LIMITS, Profile())
        await asyncio.sleep(0.05)
        before = sock.last_active
        assert sock.ping()
        await asyncio.sleep(0.3)
        assert sock.last_active > before and not sock.closed  # the pong came back
        sock.close()
        await server.stop()

    run(scenario)


def test_the_pool_leases_one_turn_at_a_time_and_keeps_what_a_socket_holds() -> None:
    async def scenario() -> None:
        server = Server(echo)
        url = await server.start()
        pool = handles()
        sockets = SocketPool(idle_per_owner=2, idle_seconds=60, max_age_seconds=3600)

        async def new(owner: str, conversation: str | None = None) -> Any:
            return sockets.add(owner, await UpstreamSocket.open(pool, url, [], LIMITS, Profile()), conversation)

        a, b, c = await new("acct", "conv-a"), await new("acct", "conv-b"), await new("acct")
        assert sockets.take("acct") is None  # all three are leased
        sockets.give_back(a, holds="resp_a")
        sockets.give_back(b, holds="resp_b")
        sockets.give_back(c)
        assert sockets.stats()["open"] == 3  # a surplus is kept a few seconds: turns end in bursts
        a.idle_since -= wspool.TRIM_SECONDS
        sockets._sweep()
        assert sockets.stats() == {"open": 2, "busy": 0, "owners": 1}  # two idle kept: the oldest went
        assert a.socket.closed and not b.socket.closed
        assert sockets.take("acct", holding="resp_a") is None  # closed with its response
        held = sockets.take("acct", holding="resp_b")
        assert held is b and b.busy
        sockets.give_back(b, holds="resp_b2")
        assert sockets.take("acct", conversation="conv-b") is b  # same conversation first
        sockets.give_back(b)
        assert sockets.take("other") is None
        sockets.drop("acct")
        assert sockets.stats()["open"] == 0 and pool.alive == 0
        old = await new("acct")
        old.socket.opened_at -= 7200  # past max_age_seconds
        sockets.give_back(old)
        assert old.socket.closed and sockets.stats()["open"] == 0
        sockets.close()
        await server.stop()

    run(scenario)
