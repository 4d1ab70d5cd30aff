"""Where an exchange writes its answer: the host's HTTP response, or a wrapper around one."""

from __future__ import annotations

from typing import Protocol

from core.protocols.base import Reply


class Sink(Protocol):
    async def reply(self, reply: Reply) -> None: ...  # a complete, non-streamed answer

    async def start(self, status: int, headers: dict[str, str]) -> None: ...  # begin a stream

    async def write(self, data: bytes) -> None: ...

    async def end(self) -> None: ...
