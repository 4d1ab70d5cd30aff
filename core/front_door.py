"""The proxy's public listener: base-URL requests are served here directly, proxy clients are
spliced into mitmproxy.

mitmproxy's HTTP layer costs more than everything else the gateway does (docs/benchmark.md:
through it, +4.6 ms to the first token and under 400 req/s; through this door, +1.2 ms and about
1,000 req/s on the same two cores). So the
port clients talk to is ours: each new connection is sniffed once. An origin-form HTTP/1 request
(``POST /v1/chat/completions``), which is what a base-URL client sends, is handed to an aiohttp
``RequestHandler``; anything else — ``CONNECT``, an absolute-form request, HTTP/2 prior
knowledge — belongs to a proxy client and is relayed byte for byte to mitmproxy's own listener on
a loopback port, where interception, mitmweb and every other addon work as usual.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

logger = logging.getLogger(__name__)

MAX_SNIFF_BYTES = 16 * 1024  # a request line longer than this is not an API call: let mitmproxy judge
_ORIGIN_FORM_METHODS = frozenset({b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS"})

ProtocolFactory = Callable[[], asyncio.Protocol]


def is_origin_form(first_line: bytes) -> bool:
    """``METHOD /path HTTP/1.x``: a request meant for this server, not one to proxy elsewhere."""
    parts = first_line.split(b" ")
    return len(parts) == 3 and parts[0] in _ORIGIN_FORM_METHODS and parts[1].startswith(b"/") and parts[2].startswith(b"HTTP/1.")


class _Relay(asyncio.Protocol):
    """One direction of a spliced connection, with back-pressure passed to the other side."""

    def __init__(self, peer: asyncio.Transport) -> None:
        self.peer = peer
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.peer.write(data)

    def eof_received(self) -> bool:
        if self.peer.can_write_eof():
            self.peer.write_eof()
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.close()

    def pause_writing(self) -> None:
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()


class _Sniffer(asyncio.Protocol):
    """Reads a connection's first line, then gives the connection away for good."""

    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n")
        if end < 0 and len(self._buffer) < MAX_SNIFF_BYTES:
            return  # the request line is not complete yet
        assert self._transport is not None
        transport, buffered = self._transport, self._buffer
        self._buffer = b""
        if end >= 0 and is_origin_form(buffered[:end]):
            self._door.serve(transport, buffered)
        else:
            self._door.splice(transport, buffered)

    def connection_lost(self, exc: Exception | None) -> None:
        self._buffer = b""


class FrontDoor:
    def __init__(self, http_protocol: ProtocolFactory, mitmproxy_address: Callable[[], tuple[str, int]]) -> None:
        """``http_protocol`` makes the aiohttp handler for a served connection;
        ``mitmproxy_address`` says where mitmproxy listens now (it can move on reconfiguration)."""
        self._http_protocol = http_protocol
        self._mitmproxy_address = mitmproxy_address
        self._servers: list[asyncio.Server] = []
        self._splices: set[asyncio.Task[None]] = set()
        # Spliced connections reach mitmproxy from a loopback port of ours; what they really came from.
        self._origins: dict[tuple[str, int], tuple[tuple[str, int], tuple[str, int]]] = {}

    async def start(self, host: str, port: int) -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Sniffer(self), host or None, port, reuse_address=True)
        self._servers.append(server)
        return [sock.getsockname()[:2] for sock in server.sockets]

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in self._splices:
            task.cancel()
        self._servers.clear()

    def origin_of(self, peername: tuple[str, int]) -> tuple[tuple[str, int], tuple[str, int]] | None:
        """For mitmproxy's ``client_connected``: the (peer, sockname) a spliced client really has, so
        mitmweb shows it and proxy-mode trust judges the real client, not our loopback hop."""
        return self._origins.pop((str(peername[0]), int(peername[1])), None)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [sock.getsockname()[:2] for server in self._servers for sock in server.sockets]

    def serve(self, transport: asyncio.Transport, buffered: bytes) -> None:
        protocol = self._http_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(buffered)

    def splice(self, transport: asyncio.Transport, buffered: bytes) -> None:
        transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._splice(transport, buffered))
        self._splices.add(task)
        task.add_done_callback(self._splices.discard)

    async def _splice(self, client: asyncio.Transport, buffered: bytes) -> None:
        host, port = self._mitmproxy_address()
        loop = asyncio.get_running_loop()
        hop = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        key: tuple[str, int] | None = None
        try:
            hop.bind((host, 0))  # the port mitmproxy will see as the peer: known before it connects
            key = hop.getsockname()[:2]
            self._origins[key] = (client.get_extra_info("peername")[:2], client.get_extra_info("sockname")[:2])
            hop.setblocking(False)
            await loop.sock_connect(hop, (host, port))
            upstream, _ = await loop.create_connection(lambda: _Relay(client), sock=hop)
        except OSError as exc:
            logger.warning("could not hand a proxy connection to mitmproxy at %s:%s: %s", host, port, exc)
            if key is not None:
                self._origins.pop(key, None)
            hop.close()
            client.close()
            return
        client.set_protocol(_Relay(upstream))  # type: ignore[arg-type]
        upstream.write(buffered)
        client.resume_reading()
