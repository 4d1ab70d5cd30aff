"""Base-URL connections (core/hosts/base_url.py): HTTP/1 as clients really send it — keep-alive,
pipelined, chunked, ``Expect: 100-continue``, clients that leave mid-answer — served as flows with
mitmproxy's hook lifecycle, and what this path does not serve handed to mitmproxy's own."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from codex_fake import FakeCodexThread
from tests.conftest import PROXY_KEY, proxy_config, with_one_account
from tests.support.mitmweb import eventually
from tests.support.proxy import ProxyProcess

# Writes every hook it sees, one per line: "<hook> <flow or connection id> <detail>".
HOOK_RECORDER = '''
import pathlib
SEEN = pathlib.Path(__file__).with_suffix(".seen")

def _note(*words):
    with SEEN.open("a") as seen:
        seen.write(" ".join(str(w) for w in words) + "\\n")

def client_connected(client): _note("client_connected", client.id)
def client_disconnected(client): _note("client_disconnected", client.id)
def server_connect(data): _note("server_connect", data.client.id)
def server_connected(data): _note("server_connected", data.client.id)
def server_disconnected(data): _note("server_disconnected", data.client.id)
def requestheaders(flow): _note("requestheaders", flow.id, flow.request.path, flow.client_conn.id)
def request(flow): _note("request", flow.id, len(flow.request.content or b""))
def responseheaders(flow): _note("responseheaders", flow.id, flow.response.status_code)
def response(flow): _note("response", flow.id, flow.response.status_code)
def error(flow): _note("error", flow.id, flow.error.msg.replace(" ", "_"))
'''

CHAT = orjson.dumps({"model": "gpt-5.4", "messages": [{"role": "user", "content": "hello"}]})


@pytest.fixture
def proxy(fake: FakeCodexThread, tmp_path: Path) -> Iterator[ProxyProcess]:
    addon = tmp_path / "recorder.py"
    addon.write_text(HOOK_RECORDER)
    started = ProxyProcess(tmp_path / "data", proxy_config(fake), args=("-s", str(addon))).start()
    started.seen = addon.with_suffix(".seen")  # type: ignore[attr-defined]
    yield with_one_account(started)
    started.stop()


def hooks(proxy: ProxyProcess) -> list[list[str]]:
    path: Path = proxy.seen  # type: ignore[attr-defined]
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def connection_hooks(proxy: ProxyProcess, known: set[str]) -> list[str]:
    """The connection hooks (and request hooks, by connection) of the one new connection, once it ended."""
    def ended() -> list[str] | None:
        seen = hooks(proxy)
        new = [e[1] for e in seen if e[0] == "client_connected" and e[1] not in known]
        if len(new) != 1 or ["client_disconnected", new[0]] not in [e[:2] for e in seen]:
            return None
        return [e[0] for e in seen if (e[0].startswith(("client_", "server_")) and e[1] == new[0])
                or (e[0] == "requestheaders" and e[3] == new[0])]
    return eventually(ended)


def connect(proxy: ProxyProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    return sock


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response off the socket (sized or chunked); what follows stays in ``buffer``."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        assert data, f"connection closed before a response head: {bytes(buffer)!r}"
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    status_line, *header_lines = head.decode().split("\r\n")
    status = int(status_line.split()[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    body = bytearray()
    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            while b"\r\n" not in buffer:
                buffer += sock.recv(65536)
            size_line, _, rest = bytes(buffer).partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body += rest[:size]
            buffer[:] = rest[size + 2:]
            if size == 0:
                break
    else:
        length = int(headers.get("content-length", "0"))
        while len(buffer) < length:
            buffer += sock.recv(65536)
        body += buffer[:length]
        del buffer[:length]
    return status, headers, bytes(body)


def post(proxy: ProxyProcess, path: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\nAuthorization: Bearer {PROXY_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_each_call_runs_mitmproxys_hooks_in_order_and_the_connection_is_announced_once(proxy: ProxyProcess) -> None:
    with connect(proxy) as sock:
        buffer = bytearray()
        for _ in range(2):  # keep-alive: two calls on one connection
            sock.sendall(post(proxy, "/v1/chat/completions", CHAT))
            status, _, body = read_response(sock, buffer)
            assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"] == "You said: hello"
    seen = eventually(lambda: (s := hooks(proxy)) and s[-1][0] == "client_disconnected" and s)
    names = [entry[0] for entry in seen if entry[0] != "error"]
    turn = ["requestheaders", "request", "responseheaders", "response"]
    # the account added through the management API came on a connection of its own, first
    assert names[-(2 + 2 * len(turn) + 3):] == ["client_connected", *turn[:2], "server_connect", "server_connected", *turn[2:],
                                                 *turn, "server_disconnected", "client_disconnected"]
    flows = {entry[1] for entry in seen[-12:] if entry[0] in turn}
    assert len(flows) == 2  # two flows, one id each across its hooks


def test_pipelined_chunked_and_100_continue_requests(proxy: ProxyProcess) -> None:
    chunked = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer " + PROXY_KEY.encode()
               + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (CHAT[:10], CHAT[10:])) + b"0\r\n\r\n") % proxy.port
    with connect(proxy) as sock:
        buffer = bytearray()
        sock.sendall(chunked + post(proxy, "/v1/chat/completions", CHAT))  # two requests in one write
        for _ in range(2):
            status, _, body = read_response(sock, buffer)
            assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"] == "You said: hello"
        head = post(proxy, "/v1/chat/completions", b"", "Expect: 100-continue\r\n").replace(b"Content-Length: 0", b"Content-Length: %d" % len(CHAT))
        sock.sendall(head)
        status, _, _ = read_response(sock, buffer)
        assert status == 100  # the client may now send the body
        sock.sendall(CHAT)
        status, _, body = read_response(sock, buffer)
        assert status == 200 and b"You said: hello" in body


def test_head_and_connection_close(proxy: ProxyProcess) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"HEAD /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\nGET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % (proxy.port, proxy.port))
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"content-length" in head.lower()
        buffer[:] = rest  # a HEAD answer has no body, whatever its length says
        status, _, body = read_response(sock, buffer)
        assert status == 200 and orjson.loads(body)["status"] == "ok"
        assert sock.recv(65536) == b""  # closed after the answer, as asked


def test_a_request_for_another_host_goes_to_mitmproxys_own_path(proxy: ProxyProcess) -> None:
    """After a call of ours, the same connection asks for a host that is not us: mitmproxy handles
    it as any proxy would (here: the host does not resolve, so mitmproxy's own 502)."""
    with connect(proxy) as sock:
        buffer = bytearray()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % proxy.port)
        assert read_response(sock, buffer)[0] == 200
        sock.sendall(b"GET / HTTP/1.1\r\nHost: elsewhere.invalid\r\n\r\n")
        status, headers, body = read_response(sock, buffer)
        assert status == 502 and headers.get("server", "").startswith("mitmproxy")
    log = eventually(lambda: "elsewhere.invalid" in proxy.log() and proxy.log())
    assert "GET http://elsewhere.invalid/" in log
    # one connection, announced once to addons whichever handler served it
    seen = eventually(lambda: (s := hooks(proxy)) and s[-1][0] == "client_disconnected" and s)
    client = next(e[3] for e in seen if e[0] == "requestheaders" and e[2] == "/" )
    assert [e[0] for e in seen if e[0].startswith("client_") and e[1] == client] == ["client_connected", "client_disconnected"]
    assert sum(1 for e in seen if e[0] == "requestheaders" and e[3] == client) == 2  # /health here, / on mitmproxy's path


def test_a_connection_that_says_nothing_is_announced_and_closed_like_any(proxy: ProxyProcess) -> None:
    known = {e[1] for e in hooks(proxy) if e[0] == "client_connected"}
    with connect(proxy):
        time.sleep(0.3)
    assert connection_hooks(proxy, known) == ["client_connected", "client_disconnected"]


def test_tls_on_the_listener_takes_mitmproxys_path_once_announced(proxy: ProxyProcess) -> None:
    """An https:// base URL on the plain listener: mitmproxy's own TLS handling, one announcement."""
    import ssl

    known = {e[1] for e in hooks(proxy) if e[0] == "client_connected"}
    context = ssl.create_default_context(cafile=str(proxy.ca_cert))
    with connect(proxy) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % proxy.port)
        status, _, body = read_response(sock, bytearray())  # type: ignore[arg-type]
    assert status == 200 and orjson.loads(body)["status"] == "ok"
    seen = connection_hooks(proxy, known)
    assert seen[0] == "client_connected" and seen.count("client_connected") == 1 and "requestheaders" in seen


def test_a_client_that_leaves_mid_stream_stops_the_turn_and_the_flow_ends_in_error(proxy: ProxyProcess,
                                                                                   fake: FakeCodexThread) -> None:
    fake.configure(events=100, event_delay_ms=100)  # a 10 s answer
    aborted = fake.stats()["aborted_streams"]
    body = orjson.dumps({"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": "long"}]})
    with connect(proxy) as sock:
        sock.sendall(post(proxy, "/v1/chat/completions", body))
        received = b""
        while received.count(b"data:") < 3:
            received += sock.recv(65536)
    started = time.monotonic()
    eventually(lambda: fake.stats()["aborted_streams"] > aborted, timeout=5)  # the backend's generation was stopped
    assert time.monotonic() - started < 5
    seen = eventually(lambda: (s := hooks(proxy)) and any(e[0] == "error" for e in s) and s)
    error = next(e for e in seen if e[0] == "error")
    assert "disconnected" in error[2].lower()
    assert not any(e[0] == "response" and e[1] == error[1] for e in seen)  # an error, not a response


def test_a_websocket_upgrade_takes_mitmproxys_path(proxy: ProxyProcess) -> None:
    """Upgrades are relayed by mitmproxy's WebSocket layer (websocket_message hooks); the base-URL
    path hands the connection over before any hook saw the request."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    with connect(proxy) as sock:
        sock.sendall((f"GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\nAuthorization: Bearer {PROXY_KEY}\r\n"
                      f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        assert buffer.startswith(b"HTTP/1.1 101")
    seen = eventually(lambda: (s := hooks(proxy)) and any(e[0] == "requestheaders" and e[2] == "/v1/responses" for e in s) and s)
    flow_id = next(e[1] for e in seen if e[0] == "requestheaders" and e[2] == "/v1/responses")
    assert [e[0] for e in seen if e[1:2] == [flow_id]][:2] == ["requestheaders", "request"]


def test_a_burst_of_connections_is_queued_not_dropped(proxy: ProxyProcess) -> None:
    """130 clients connect while the proxy cannot accept (stopped): the kernel must queue them all
    (mitmproxy's listeners would queue 100 and drop the rest at the SYN, a one-second retry)."""
    import asyncio
    import os
    import signal

    assert proxy.process is not None
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % proxy.port

    async def one() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(request)
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200")
        return time.monotonic()

    async def burst() -> list[float]:
        os.kill(proxy.process.pid, signal.SIGSTOP)
        try:
            clients = [asyncio.ensure_future(one()) for _ in range(130)]
            await asyncio.sleep(1.2)  # past the first SYN retry (1 s), while nothing is accepted
        finally:
            os.kill(proxy.process.pid, signal.SIGCONT)
        resumed = time.monotonic()
        return [done - resumed for done in await asyncio.wait_for(asyncio.gather(*clients), 30)]

    waits = asyncio.run(burst())
    assert max(waits) < 0.75, f"slowest client answered {max(waits):.2f} s after the proxy resumed"
