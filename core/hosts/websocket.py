"""The gateway's end of a client's WebSocket, inside mitmproxy.

The upgrade request is an ordinary flow through the whole addon chain; the gateway, as the flow's
virtual upstream (core/hosts/virtual.py), answers it ``101 Switching Protocols`` and from then on
speaks RFC 6455 frames (wsproto, which mitmproxy ships) on that connection. mitmproxy's own
WebSocket layer sits between the client and us, as it would for a real server: every message goes
through the ``websocket_message`` hook (addons see and may change or drop it), shows in mitmweb and
is saved with ``-w``; what reaches us is what mitmproxy forwarded.
"""

from __future__ import annotations

import base64
import hashlib

import wsproto
from mitmproxy import http
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage

from core.hosts.virtual import Answer, VirtualConnection

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
MAX_MESSAGE = 64 * 1024 * 1024  # a client message over this closes the socket (1009)


def is_upgrade(request: http.Request) -> bool:
    return request.headers.get("upgrade", "").lower() == "websocket"


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.strip().encode() + _GUID).digest()).decode()


class ServerSocket:
    """One accepted WebSocket: text messages in and out, pings answered, closes handled.
    No extension is negotiated (no ``Sec-WebSocket-Extensions`` in the answer), so both
    mitmproxy's side and ours frame plain messages."""

    def __init__(self, conn: VirtualConnection) -> None:
        self._conn = conn
        self._ws = wsproto.Connection(wsproto.ConnectionType.SERVER)
        self._parts: list[str | bytes] = []
        self._size = 0

    @classmethod
    def accept(cls, answer: Answer, request: http.Request, headers: dict[str, str]) -> ServerSocket:
        """Answer the upgrade (its key checked by the caller's route) and start framing."""
        fields = {"upgrade": "websocket", "connection": "Upgrade",
                  "sec-websocket-accept": accept_key(request.headers.get("sec-websocket-key", "")), **headers}
        return cls(answer.switch_protocols(fields))

    @property
    def open(self) -> bool:
        return self._ws.state is ConnectionState.OPEN and not self._conn.closed

    async def receive(self) -> str | bytes | None:
        """The next whole message (``str`` for text, ``bytes`` for binary); ``None`` once closed."""
        while True:
            for event in self._ws.events():
                if isinstance(event, Message):
                    self._parts.append(event.data)
                    self._size += len(event.data)
                    if self._size > MAX_MESSAGE:
                        await self.close(1009, "message too big")
                        return None
                    if event.message_finished:
                        parts, self._parts, self._size = self._parts, [], 0
                        return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)  # type: ignore[arg-type]
                elif isinstance(event, Ping):
                    self._send(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if self._ws.state is ConnectionState.REMOTE_CLOSING:
                        self._send(self._ws.send(event.response()))
                    self._conn.push(None)
                    return None
            if self._ws.state is ConnectionState.CLOSED:
                return None
            data = await self._conn.read_client()
            self._ws.receive_data(data or None)

    async def send_text(self, text: str) -> None:
        if self.open:
            self._send(self._ws.send(TextMessage(data=text)))
            await self._conn.writable()

    async def send_bytes(self, data: bytes) -> None:
        if self.open:
            self._send(self._ws.send(BytesMessage(data=data)))
            await self._conn.writable()

    async def ping(self) -> None:
        """A keep-alive while a turn is silent (proxies and tunnels cut idle sockets)."""
        if self.open:
            self._send(self._ws.send(Ping(payload=b"")))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.open:
            self._send(self._ws.send(CloseConnection(code=code, reason=reason)))
        self._conn.push(None)

    def _send(self, data: bytes) -> None:
        self._conn.push(data, len(data))
