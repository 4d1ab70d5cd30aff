"""The front door's one decision: serve origin-form requests, relay everything else untouched."""

from __future__ import annotations

import asyncio

from aiohttp import web

from core.front_door import FrontDoor, is_origin_form


def test_origin_form_detection() -> None:
    assert is_origin_form(b"POST /v1/chat/completions HTTP/1.1")
    assert is_origin_form(b"GET / HTTP/1.0")
    assert not is_origin_form(b"CONNECT api.openai.com:443 HTTP/1.1")
    assert not is_origin_form(b"GET http://example.com/ HTTP/1.1")
    assert not is_origin_form(b"PRI * HTTP/2.0")
    assert not is_origin_form(b"\x16\x03\x01\x02\x00")  # a TLS ClientHello sent straight at us


async def _echo_server() -> tuple[asyncio.Server, int, list[bytes]]:
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.append(data)
            writer.write(b"echo:" + data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], received


async def _exchange(port: int, payload: bytes, until: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = b""
    while until not in data:
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        if not chunk:
            break
        data += chunk
    writer.close()
    return data


def test_serves_api_calls_and_relays_proxy_traffic() -> None:
    async def scenario() -> None:
        echo, echo_port, received = await _echo_server()

        async def handler(request: web.BaseRequest) -> web.Response:
            return web.Response(text=f"served {request.method} {request.path} {len(await request.read())}")

        door = FrontDoor(web.Server(handler), lambda: ("127.0.0.1", echo_port))
        ((_, port),) = await door.start("127.0.0.1", 0)
        try:
            served = await _exchange(port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", b"completions 3")
            assert b"200 OK" in served and served.endswith(b"served POST /v1/chat/completions 3")
            # the request line can arrive in pieces
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for piece in (b"GE", b"T /health HT", b"TP/1.1\r\nHost: x\r\n\r\n"):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)
            assert (await asyncio.wait_for(reader.read(65536), 5)).endswith(b"served GET /health 0")
            writer.close()

            connect = b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n"
            assert await _exchange(port, connect, b"echo:") == b"echo:" + connect
            absolute = b"GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n"
            assert (await _exchange(port, absolute, b"echo:")).startswith(b"echo:GET http://example.com/x")
            huge = b"X" * (20 * 1024)  # no request line in sight: not ours to judge
            got = await _exchange(port, huge, b"X" * 100)
            assert len(got) > 100, got
            assert b"".join(received).startswith(connect)
        finally:
            await door.stop()
            echo.close()

    asyncio.run(scenario())
