"""Helpers for building Codex ``input`` items, shared by the protocol translators."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

CALL_TYPES = {"function_call": "function_call_output", "custom_tool_call": "custom_tool_call_output"}
MISSING_OUTPUT = "(no result: this tool call was interrupted before it returned)"


def text_of_parts(content: Any, separator: str = "\n") -> str:
    """Plain text of a string or of a list of text-like parts; other parts are ignored."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(p.get("text") or "")
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "input_text", "output_text")
        ]
        return separator.join(texts)
    return str(content)


def pair_tool_calls(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The backend rejects a tool call that has no output ("No tool output found for function
    call …"), which happens when a client cancels a turn mid-tool. Give such calls a stub output
    right after them so the conversation stays usable."""
    answered = {item.get("call_id") for item in items if item.get("type") in CALL_TYPES.values()}
    out: list[dict[str, Any]] = []
    for item in items:
        out.append(item)
        output_type = CALL_TYPES.get(item.get("type", ""))
        if output_type and item.get("call_id") not in answered:
            out.append({"type": output_type, "call_id": item.get("call_id"), "output": MISSING_OUTPUT})
    return out


class CallLedger:
    """Pairs tool results with tool calls for protocols whose ids are optional (Gemini, Ollama).

    A call without an id gets one from its position in the conversation (``call_synth_<n>``), so the
    same history always yields the same ids and the prompt cache keeps matching. A result is paired
    with the call it names by id, else the oldest open call of the same name, else the oldest open
    call; ``None`` when every call is already answered."""

    def __init__(self) -> None:
        self._open: list[tuple[str, str]] = []  # (call_id, name), oldest first
        self._count = 0

    def call(self, call_id: Any, name: str) -> str:
        self._count += 1
        resolved = call_id if isinstance(call_id, str) and call_id else f"call_synth_{self._count}"
        self._open.append((resolved, name))
        return resolved

    def result(self, call_id: Any, name: Any) -> str | None:
        for matches in (lambda c: c[0] == call_id, lambda c: c[1] == name, lambda c: True):
            for index, candidate in enumerate(self._open):
                if matches(candidate):
                    del self._open[index]
                    return candidate[0]
        return None


def parse_arguments(text: str) -> dict[str, Any] | None:
    """A function call's JSON arguments as an object; ``None`` when they are not a JSON object."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image_type(b64: str) -> str:
    """The MIME type of base64 image data from its first bytes (clients such as Ollama's send bare
    base64 without a type); PNG when unrecognised."""
    try:
        head = base64.b64decode(b64[:24] + "=" * (-len(b64[:24]) % 4))
    except (binascii.Error, ValueError):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for signature, mime in _IMAGE_SIGNATURES if head.startswith(signature)), "image/png")


def image_url(data: str, mime: str | None = None) -> str:
    """A ``data:`` URL for base64 image data; URLs (``data:``, ``http(s):``) pass unchanged."""
    if data.startswith(("data:", "http://", "https://")):
        return data
    return f"data:{mime or sniff_image_type(data)};base64,{data}"
