"""The upstream transport and its libcurl driver, against real HTTP servers on loopback.

Every test runs real libcurl transfers (no mocks) against a small scripted HTTP/1.1 server, so
what is asserted is what goes over the wire: request bytes, aborts the server sees, TCP
back-pressure, timeouts, and the pool's handle and socket counts afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.codex.errors import UpstreamError
from core.config import ConfigStore
from core.settings import Settings
from core.upstream import driver as driver_module
from core.upstream.driver import CurlDriver, Limits, Profile, TransferError
from core.upstream.tap import tapping
from core.upstream.transport import UpstreamTransport

pytestmark = pytest.mark.timeout(60)

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Seen:
    """One request as the server read it."""

    method: str
    target: str
    head: bytes  # request line and header lines, as sent
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Seen, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    """A scripted HTTP/1.1 server: ``handler`` answers each request; keep-alive as long as the
    handler leaves the connection open."""

    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    disconnects: int = 0  # connections the client closed
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=4096)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(method, target, head, headers, body)
                self.seen.append(seen)
                await self.handler(seen, reader, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            self.disconnects += 1
            self.disconnected.set()
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def response(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in (headers or [])] + [f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked_head(headers: list[tuple[str, str]] | None = None) -> bytes:
    lines = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Transfer-Encoding: chunked"]
    lines += [f"{k}: {v}" for k, v in (headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def settings(tmp: Path, connect_timeout: float = 5, timeout: float = 30, idle: float = 30, **tls: Any) -> Settings:
    """The shipped settings (the codex_cli fingerprint, ...) with these timeouts (a call's, a
    stream's silence) and ``tls`` values."""
    cfg = ConfigStore(tmp, environ={}).current
    api = dataclasses.replace(cfg.api, connect_timeout_seconds=connect_timeout, timeout_seconds=timeout)
    stream = dataclasses.replace(cfg.stream, idle_timeout_seconds=idle)
    return dataclasses.replace(cfg, api=api, stream=stream, tls=dataclasses.replace(cfg.tls, **tls))


def transport(tmp: Path, **tls: Any) -> UpstreamTransport:
    return UpstreamTransport(settings(tmp, **tls))


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def assert_idle(driver: CurlDriver) -> None:
    stats = driver.stats()
    assert stats["running"] == 0 and stats["waiting"] == 0, stats
    assert stats["handles"] == stats["idle"], stats


# -- the basics ------------------------------------------------------------------------------------


def test_request_and_stream_answers(tmp_path: Path) -> None:
    async def handler(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if seen.target == "/json":
            writer.write(response(200, b'{"ok":true}', [("Content-Type", "application/json"), ("X-Two", "a"), ("X-Two", "b")]))
        else:
            writer.write(chunked_head([("Set-Cookie", "__cf_bm=1; Path=/"), ("Set-Cookie", "cf_clearance=2; Path=/")]))
            for i in range(5):
                writer.write(chunk(b"data: %d\n\n" % i))
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def scenario() -> None:
        server = Server(handler)
        base = await server.start()
        t = transport(tmp_path)
        reply = await t.request("GET", base + "/json", {"Accept": "application/json"})
        assert reply.status == 200 and reply.body == b'{"ok":true}'
        assert reply.headers["content-type"] == "application/json" and reply.headers["x-two"] == "a, b"

        stream = await t.open_stream(base + "/sse", {"Content-Type": "application/json"}, b'{"a":1}')
        assert stream.status == 200 and stream.headers["content-type"] == "text/event-stream"
        assert stream.set_cookies == ["__cf_bm=1; Path=/", "cf_clearance=2; Path=/"]
        body = b"".join([c async for c in stream.chunks()])
        await stream.aclose()
        assert body == b"".join(b"data: %d\n\n" % i for i in range(5))
        assert server.seen[1].method == "POST" and server.seen[1].body == b'{"a":1}'
        assert_idle(t.driver)
        await t.close()
        await server.stop()

    run(scenario())


def test_same_request_bytes_as_curl_cffi_session(tmp_path: Path) -> None:
    """Handles configured once send exactly what curl_cffi's AsyncSession sent per request
    (impersonated header set and order included)."""
    from curl_cffi.requests import AsyncSession

    async def handler(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response(200, b"{}"))
        await writer.drain()

    async def scenario() -> None:
        server = Server(handler)
        base = await server.start()
        headers = {"Authorization": "Bearer x", "User-Agent": "codex_cli_rs/0.1", "Content-Type": "application/json",
                   "Accept": "text/event-stream", "Cookie": "cf_clearance=z", "Empty": ""}
        session = AsyncSession(impersonate="chrome", discard_cookies=True)
        await session.request("POST", base + "/a", headers=headers, content=b'{"a":1}', stream=False, timeout=(5, 30))
        await session.request("GET", base + "/b", headers={"Accept": "application/json"}, timeout=30)
        await session.close()
        t = transport(tmp_path, impersonate="chrome")
        stream = await t.open_stream(base + "/a", headers, b'{"a":1}')
        await stream.read()
        await t.request("GET", base + "/b", {"Accept": "application/json"})
        await t.close()
        await server.stop()
        old, new = server.seen[:2], server.seen[2:]
        for before, after in zip(old, new, strict=True):
            assert after.head == before.head
            assert after.body == before.body

    run(scenario())


def test_a_reused_handle_forgets_the_last_request(tmp_path: Path) -> None:
    """Method, body and cookies of one request never reach the next on the same handle."""

    async def handler(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = response(200, seen.method.encode(), [("Set-Cookie", "session=secret; Path=/")])
        writer.write(answer[:-len(seen.method)] if seen.method == "HEAD" else answer)  # HEAD: the length, no body
        await writer.drain()

    async def scenario() -> None:
        server = Server(handler)
        base = await server.start()
        t = transport(tmp_path, idle_connections=1)  # one handle, one connection: every call reuses them
        assert (await t.request("POST", base + "/1", {"X": "1"}, b"body")).body == b"POST"
        assert (await t.request("GET", base + "/2", {"X": "2"})).body == b"GET"
        assert (await t.request("PUT", base + "/3", {}, b"put-body")).body == b"PUT"
        assert (await t.request("DELETE", base + "/4")).body == b"DELETE"
        head = await t.request("HEAD", base + "/5")
        assert head.status == 200 and head.body == b"" and head.headers["content-length"] == "4"
        assert (await t.request("POST", base + "/6", {}, b"again")).body == b"POST"
        assert (await t.request("GET", base + "/7")).body == b"GET"
        assert t.driver.stats()["handles"] == 1
        first, get, put, delete, head_seen, post, get2 = server.seen
        assert first.body == b"body"
        assert get.body == b"" and "content-length" not in get.headers and "x" in get.headers
        assert put.body == b"put-body"
        assert delete.method == "DELETE" and delete.body == b"" and "content-length" not in delete.headers
        assert head_seen.method == "HEAD" and post.method == "POST" and post.body == b"again"
        assert get2.method == "GET" and get2.body == b"" and "content-length" not in get2.headers
        assert all("cookie" not in seen.headers for seen in server.seen)
        assert server.connections == 1
        await t.close()
        await server.stop()

    run(scenario())


def test_redirects_are_followed_and_the_final_answer_reported(tmp_path: Path) -> None:
    async def handler(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if seen.target == "/old":
            writer.write(response(302, b"moved", [("Location", "/new"), ("X-From", "old")]))
        else:
            writer.write(response(200, b"here", [("X-From", "new")]))
        await writer.drain()

    async def scenario() -> None:
        server = Server(handler)
        base = await server.start()
        t = transport(tmp_path)
        reply = await t.request("GET", base + "/old")
        assert (reply.status, reply.body, reply.headers["x-from"]) == (200, b"here", "new")
        await t.close()
        await server.stop()

    run(scenario())


def test_a_per_request_proxy(tmp_path: Path) -> None:
    """``proxy`` on one start goes through that proxy; the handle's next request goes direct; ``""``
    goes direct even when the driver has a proxy."""

    async def origin(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response(200, b"direct"))
        await writer.drain()

    async def proxy(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response(200, b"via proxy " + seen.target.encode()))
        await writer.drain()

    async def scenario() -> None:
        origin_server, proxy_server = Server(origin), Server(proxy)
        base, proxy_base = await origin_server.start(), await proxy_server.start()
        driver = CurlDriver(idle_handles=1)
        limits, profile = Limits(5, 5), Profile()
        transfer = driver.start("GET", base + "/x", [], None, limits, profile, proxy="http://user:pw@" + proxy_base[7:],
                                collect=True)
        await transfer.finished()
        assert transfer.take() == b"via proxy " + (base + "/x").encode()
        assert proxy_server.seen[0].headers["proxy-authorization"] == "Basic dXNlcjpwdw=="
        transfer = driver.start("GET", base + "/y", [], None, limits, profile, collect=True)
        await transfer.finished()
        assert transfer.take() == b"direct" and len(proxy_server.seen) == 1
        driver.close()
        # A driver with a proxy of its own: None uses it, "" goes direct (an account in direct mode).
        driver = CurlDriver(proxy=proxy_base, idle_handles=1)
        via = b"via proxy " + (base + "/z").encode()
        for override, answer in ((None, via), ("", b"direct"), (None, via)):
            transfer = driver.start("GET", base + "/z", [], None, limits, profile, proxy=override, collect=True)
            await transfer.finished()
            assert transfer.take() == answer, override
        assert len(proxy_server.seen) == 3
        driver.close()
        await origin_server.stop()
        await proxy_server.stop()

    run(scenario())


def test_legs_are_reported_to_the_tap(tmp_path: Path) -> None:
    events: list[tuple[Any, ...]] = []

    class Leg:
        def response(self, status: int, headers: Any) -> None:
            events.append(("response", status))

        def data(self, chunk: bytes) -> None:
            events.append(("data", chunk))

        def end(self, error: str | None = None) -> None:
            events.append(("end", error))

    class Tap:
        def open(self, method: str, url: str, headers: Any, body: bytes | None) -> Leg:
            events.append(("open", method, url.rsplit("/", 1)[-1]))
            return Leg()

    async def handler(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response(200, b"hello"))
        await writer.drain()

    async def scenario() -> None:
        server = Server(handler)
        base = await server.start()
        t = transport(tmp_path)
        with tapping(Tap()):
            await t.request("GET", base + "/plain")
            stream = await t.open_stream(base + "/stream", {}, b"{}")
            assert b"".join([c async for c in stream.chunks()]) == b"hello"
            await stream.aclose()
            with pytest.raises(UpstreamError):
                await t.request("GET", "http://127.0.0.1:1/refused")
        assert events[:4] == [("open", "GET", "plain"), ("response", 200), ("data", b"hello"), ("end", None)]
        assert events[4:8] == [("open", "POST", "stream"), ("response", 200), ("data", b"hello"), ("end", None)]
        assert events[8][:2] == ("open", "GET") and events[9][0] == "end" and "upstream" in events[9][1]
        await t.close()
        await server.stop()

    run(scenario())


# -- aborts ----------------------------------------------------------------------------------------


def endless(period: float) -> Handler:
    async def handler(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(chunked_head())
        n = 0
        while True:
            writer.write(chunk(b"data: %d\n\n" % n))
            await writer.drain()
            n += 1
            await asyncio.sleep(period)

    return handler


@pytest.mark.parametrize("sockets", ["epoll", "loop"])
def test_closing_a_stream_stops_the_upstream_at_once(tmp_path: Path, sockets: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the driver's own epoll set and with the portable fallback (the loop's readers)."""
    if sockets == "loop":
        monkeypatch.setattr(driver_module, "_SOCKETS", driver_module._LoopSockets)

    async def scenario() -> None:
        server = Server(endless(0.005))
        base = await server.start()
        t = transport(tmp_path)
        stream = await t.open_stream(base + "/endless", {}, b"{}")
        received = 0
        async for data in stream.chunks():
            received += data.count(b"data:")
            if received >= 5:
                break
        started = time.perf_counter()
        await stream.aclose()
        assert time.perf_counter() - started < 0.05  # never waits for the upstream
        await asyncio.wait_for(server.disconnected.wait(), 2)  # the server saw the connection go
        assert_idle(t.driver)
        assert t.driver.stats()["sockets"] == 0
        await t.close()
        await server.stop()

    run(scenario())


def test_a_caller_cancelled_before_the_headers_aborts_the_transfer(tmp_path: Path) -> None:
    async def silent(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not await reader.read(1):  # never answers; returns when the client hangs up
            raise ConnectionResetError

    async def scenario() -> None:
        server = Server(silent)
        base = await server.start()
        t = transport(tmp_path)
        task = asyncio.get_running_loop().create_task(t.open_stream(base + "/silent", {}, b"{}"))
        while not server.seen:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(server.disconnected.wait(), 2)
        assert_idle(t.driver)
        await t.close()
        await server.stop()

    run(scenario())


def test_thousands_of_streams_opened_and_aborted_leave_nothing_behind(tmp_path: Path) -> None:
    """Streams aborted at every stage (before the headers, mid-body, after the end) give every
    handle and socket back: the pool returns to its idle size, descriptors and memory to their
    level after a first round of the same."""

    async def handler(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = int(seen.target.rsplit("/", 1)[-1])
        if n % 4 == 0:
            await asyncio.sleep(0.05)  # aborted before its headers
        writer.write(chunked_head())
        for i in range(n % 4 * 2):  # 0, 2, 4 or 6 chunks, then the end
            writer.write(chunk(b"data: %d\n\n" % i))
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def one(t: UpstreamTransport, base: str, n: int) -> None:
        try:
            stream = await asyncio.wait_for(t.open_stream(f"{base}/s/{n}", {}, b"{}"), 0.02 if n % 4 == 0 else 5)
        except (TimeoutError, UpstreamError):
            return
        async for _ in stream.chunks():
            if n % 3 == 0:
                break  # mid-body
        await stream.aclose()

    async def round_of(t: UpstreamTransport, base: str, count: int) -> None:
        for start in range(0, count, 250):
            await asyncio.gather(*(one(t, base, n) for n in range(start, start + 250)))

    async def scenario() -> None:
        server = Server(handler)
        base = await server.start()
        t = transport(tmp_path, idle_connections=16)
        await round_of(t, base, 1000)
        gc.collect()
        fds, memory = open_fds(), rss()
        await round_of(t, base, 3000)
        gc.collect()
        stats = t.driver.stats()
        assert_idle(t.driver)
        assert stats["idle"] <= 16
        assert open_fds() <= fds + 16  # libcurl may keep up to 16 idle connections
        assert rss() - memory < 16 * 2**20, (rss() - memory) / 2**20
        await t.close()
        await asyncio.sleep(0.1)
        assert t.driver.stats()["handles"] == 0 and t.driver.stats()["sockets"] == 0
        await server.stop()

    run(scenario())


def test_close_aborts_what_still_runs(tmp_path: Path) -> None:
    async def handler(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if seen.target == "/silent":
            if not await reader.read(1):
                raise ConnectionResetError
        await endless(0.01)(seen, reader, writer)

    async def scenario() -> None:
        server = Server(handler)
        base = await server.start()
        t = transport(tmp_path)
        stream = await t.open_stream(base + "/endless", {}, b"{}")
        waiting = asyncio.get_running_loop().create_task(t.open_stream(base + "/silent", {}, b"{}"))
        while len(server.seen) < 2:
            await asyncio.sleep(0.01)
        await t.close()
        with pytest.raises(UpstreamError, match="aborted"):
            await asyncio.wait_for(waiting, 2)
        with pytest.raises(UpstreamError, match="aborted"):
            async for _ in stream.chunks():
                pass
        await stream.aclose()
        await asyncio.wait_for(server.disconnected.wait(), 2)
        assert t.driver.stats() == {"handles": 0, "running": 0, "idle": 0, "sockets": 0, "waiting": 0}
        await server.stop()

    run(scenario())


# -- back-pressure -----------------------------------------------------------------------------------


def test_an_unread_stream_is_paused_and_resumes_intact() -> None:
    total, piece = 16 * 2**20, 64 * 1024
    sent = 0

    async def flood(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        writer.write(chunked_head())
        for i in range(total // piece):
            writer.write(chunk(bytes([i % 251]) * piece))
            await writer.drain()
            sent += piece
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def scenario() -> None:
        server = Server(flood)
        base = await server.start()
        driver = CurlDriver(high_water=256 * 1024)
        transfer = driver.start("POST", base + "/flood", [], b"{}", Limits(5, 30, stall=True), Profile())
        await transfer.headers()
        await asyncio.sleep(0.5)  # the reader is busy elsewhere
        assert len(transfer.buffer) < 256 * 1024 + 64 * 1024  # one more write past the mark, at most
        assert sent < total / 2  # TCP pushed back on the server: libcurl stopped reading
        received = bytearray()
        while not transfer.done or transfer.buffer:
            received += transfer.take()
            if not transfer.buffer and not transfer.done:
                await transfer.wait()
        assert transfer.error is None and len(received) == total and sent == total
        assert all(received[i * piece] == i % 251 for i in range(total // piece))
        driver.close()
        await server.stop()

    run(scenario())


# -- failures ----------------------------------------------------------------------------------------


def test_connect_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = transport(tmp_path)
        with pytest.raises(UpstreamError) as caught:
            await t.open_stream("http://127.0.0.1:1/x", {}, b"{}")
        assert caught.value.code == "upstream_transport_error" and "connect" in caught.value.message.lower()
        with pytest.raises(UpstreamError):
            await t.request("GET", "http://127.0.0.1:1/x")
        assert_idle(t.driver)
        await t.close()

    run(scenario())


def test_connect_timeout_covers_the_tls_handshake(tmp_path: Path) -> None:
    """A server that accepts TCP and never answers the ClientHello: api.connect_timeout_seconds."""

    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: asyncio.sleep(30), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        t = UpstreamTransport(settings(tmp_path, connect_timeout=0.5))
        started = time.perf_counter()
        with pytest.raises(UpstreamError, match="(?i)timed? ?out"):
            await t.open_stream(f"https://127.0.0.1:{port}/x", {}, b"{}")
        assert 0.4 < time.perf_counter() - started < 3
        assert_idle(t.driver)
        await t.close()
        server.close()

    run(scenario())


def test_request_timeout(tmp_path: Path) -> None:
    async def stall_after_headers(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        await writer.drain()
        await asyncio.sleep(30)

    async def scenario() -> None:
        server = Server(stall_after_headers)
        base = await server.start()
        t = transport(tmp_path)
        started = time.perf_counter()
        with pytest.raises(UpstreamError, match="(?i)timed? ?out"):
            await t.request("GET", base + "/slow", timeout=0.5)
        assert 0.4 < time.perf_counter() - started < 3
        assert_idle(t.driver)
        await t.close()
        await server.stop()

    run(scenario())


def test_a_stalled_stream_fails_after_the_read_timeout(tmp_path: Path) -> None:
    """stream.idle_timeout_seconds bounds the silence in a stream, not its length. libcurl averages the
    speed over its last 5 seconds, so the error comes up to 5 s after the timeout."""

    async def slow_then_silent(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(chunked_head())
        for i in range(8):  # 2 s of steady events: longer than the timeout, never silent for it
            writer.write(chunk(b"data: %d\n\n" % i))
            await writer.drain()
            await asyncio.sleep(0.25)
        await asyncio.sleep(30)

    async def scenario() -> None:
        server = Server(slow_then_silent)
        base = await server.start()
        t = UpstreamTransport(settings(tmp_path, idle=1))
        stream = await t.open_stream(base + "/stall", {}, b"{}")
        received = b""
        started = time.perf_counter()
        with pytest.raises(UpstreamError, match="(?i)too slow|timed? ?out"):
            async for data in stream.chunks():
                received += data
        assert received.count(b"data:") == 8
        assert 2.5 < time.perf_counter() - started < 10
        await stream.aclose()
        assert_idle(t.driver)
        await t.close()
        await server.stop()

    run(scenario())


# -- limits ------------------------------------------------------------------------------------------


def test_max_transfers_queues_starts_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = Server(endless(0.01))
        base = await server.start()
        t = transport(tmp_path, max_transfers=2)
        first = await t.open_stream(base + "/1", {}, b"{}")
        second = await t.open_stream(base + "/2", {}, b"{}")
        third = asyncio.get_running_loop().create_task(t.open_stream(base + "/3", {}, b"{}"))
        cancelled = asyncio.get_running_loop().create_task(t.open_stream(base + "/4", {}, b"{}"))
        fourth = asyncio.get_running_loop().create_task(t.open_stream(base + "/5", {}, b"{}"))
        await asyncio.sleep(0.2)
        assert not third.done() and t.driver.stats()["waiting"] == 3 and len(server.seen) == 2
        cancelled.cancel()
        await first.aclose()
        stream3 = await asyncio.wait_for(third, 2)
        await asyncio.sleep(0.1)
        assert not fourth.done() and [s.target for s in server.seen] == ["/1", "/2", "/3"]
        await second.aclose()
        stream5 = await asyncio.wait_for(fourth, 2)
        assert [s.target for s in server.seen] == ["/1", "/2", "/3", "/5"]
        await stream3.aclose()
        await stream5.aclose()
        assert_idle(t.driver)
        await t.close()
        await server.stop()

    run(scenario())


def test_unknown_impersonation_target_fails_the_call(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = transport(tmp_path, impersonate="netscape4")
        with pytest.raises(UpstreamError, match="netscape4"):
            await t.request("GET", "http://127.0.0.1:1/")
        assert t.driver.stats()["handles"] == 0
        await t.close()

    run(scenario())


def test_transfer_error_carries_curl_code() -> None:
    async def scenario() -> None:
        driver = CurlDriver()
        transfer = driver.start("GET", "http://127.0.0.1:1/", [], None, Limits(5, 5), Profile(), collect=True)
        with pytest.raises(TransferError) as caught:
            await transfer.finished()
        assert caught.value.code == 7  # CURLE_COULDNT_CONNECT
        driver.close()

    run(scenario())
