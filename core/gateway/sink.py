"""Where an exchange writes its answer: the host's HTTP response, or a wrapper around one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from core.protocols.base import Reply

# A mapping, or pairs where a name repeats (the dashboard's several Set-Cookie headers).
Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class Sink(Protocol):
    async def reply(self, reply: Reply) -> None: ...  # a complete, non-streamed answer

    async def start(self, status: int, headers: Headers) -> None: ...  # begin a stream

    async def write(self, data: bytes) -> None: ...

    async def end(self) -> None: ...
