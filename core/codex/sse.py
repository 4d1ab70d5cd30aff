"""Incremental SSE framing for the Codex backend's event stream.

Hand-written on purpose: besides standard framing the backend needs two tolerances no maintained
SSE library offers on raw bytes — continuation lines without a ``data:`` prefix (pretty-printed
JSON error bodies) and a hard cap on one unterminated event (a 4K image item is 10–15 MB).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_EVENT_BYTES = 64 * 1024 * 1024


class SSEError(Exception):
    pass


@dataclass(slots=True)
class SSEEvent:
    event: str  # the ``event:`` line, or "" when absent
    data: bytes  # ``data:`` lines joined with newlines, undecoded


class SSEParser:
    __slots__ = ("_buffer", "_max", "events_seen")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buffer = b""
        self._max = max_event_bytes
        self.events_seen = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            # Keep a trailing CR for the next chunk: it may be the first half of CRLF.
            tail = b"\r" if buffer.endswith(b"\r") else b""
            buffer = buffer[: len(buffer) - len(tail)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = _parse_block(buffer[start:end])
            if event is not None:
                events.append(event)
            start = end + 2
        self._buffer = buffer[start:]
        if len(self._buffer) > self._max:
            raise SSEError(f"SSE event exceeds {self._max} bytes without a terminator")
        self.events_seen += len(events)
        return events

    def close(self) -> list[SSEEvent]:
        """Flush an unterminated last event (a stream may end without the blank line)."""
        rest, self._buffer = self._buffer.strip(b"\r\n"), b""
        event = _parse_block(rest) if rest else None
        if event is not None:
            self.events_seen += 1
            return [event]
        return []


def _parse_block(block: bytes) -> SSEEvent | None:
    name = ""
    data: list[bytes] = []
    in_data = False
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
            in_data = True
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
            in_data = False
        elif not line or line.startswith(b":") or line.startswith(b"id:") or line.startswith(b"retry:"):
            continue
        elif in_data:
            data.append(line)  # continuation of a pretty-printed JSON body
    if not data:
        return None
    payload = data[0] if len(data) == 1 else b"\n".join(data)
    if payload == b"[DONE]":
        return None
    return SSEEvent(name, payload)


def format_event(name: str | None, data: bytes) -> bytes:
    """Frame one event for a client: ``event:`` line optional, ``data:`` always."""
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    if name:
        return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"
