"""Copying an exchange's answer as it passes, for the dashboard's log view (``logs.capture_bodies``)."""

from __future__ import annotations

from core.gateway.sink import Sink
from core.protocols.base import Reply
from core.store.bodies import BODY_CAP, Captured


class BodyCapture:
    """A sink that passes everything on and keeps the first ``BODY_CAP`` bytes of the answer."""

    def __init__(self, inner: Sink) -> None:
        self._inner = inner
        self._chunks: list[bytes] = []
        self._size = 0
        self.truncated = False

    def _keep(self, data: bytes) -> None:
        if self._size < BODY_CAP:
            self._chunks.append(data)
        else:
            self.truncated = True
        self._size += len(data)

    async def reply(self, reply: Reply) -> None:
        self._keep(reply.body)
        await self._inner.reply(reply)

    async def start(self, status: int, headers: dict[str, str]) -> None:
        await self._inner.start(status, headers)

    async def write(self, data: bytes) -> None:
        self._keep(data)
        await self._inner.write(data)

    async def end(self) -> None:
        await self._inner.end()

    def captured(self, request_id: str, ts: float, request_body: bytes) -> Captured:
        return Captured(request_id, ts, request_body, b"".join(self._chunks), self.truncated)
