"""A turn's Responses-shaped ``input`` read back as a conversation the non-Responses wires render:
messages by role, each with its content parts, the assistant's tool calls and reasoning, and the
tool results in the order they came."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.protocols.items import text_of_parts

DEFAULT_INSTRUCTIONS = "You are a helpful assistant."  # what the translators add when a client gave none
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+/-]+)?(?:;[\w=.-]+)*;base64,(?P<data>.*)$", re.DOTALL)


@dataclass(slots=True)
class Part:
    kind: str  # "text" | "image" | "file"
    text: str = ""
    url: str = ""  # http(s) URL or data: URL (images, files)
    filename: str | None = None
    detail: str | None = None

    @property
    def inline(self) -> tuple[str, str] | None:
        """(mime type, base64 data) of a ``data:`` URL."""
        match = _DATA_URL.match(self.url)
        if match is None:
            return None
        return match["mime"] or "application/octet-stream", match["data"]


@dataclass(slots=True)
class Call:
    call_id: str
    name: str
    arguments: str  # JSON text; a custom tool's input wrapped as {"input": ...}
    custom: bool = False


@dataclass(slots=True)
class Result:
    call_id: str
    name: str
    text: str
    parts: list[Part] = field(default_factory=list)  # images a tool returned


@dataclass(slots=True)
class Thought:
    text: str
    sealed: str | None  # the reasoning item's encrypted_content


@dataclass(slots=True)
class Message:
    role: str  # "system" | "user" | "assistant" | "tool"
    parts: list[Part] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    thoughts: list[Thought] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if p.kind == "text")


def instructions_of(body: dict[str, Any]) -> str:
    text = body.get("instructions")
    return text if isinstance(text, str) and text != DEFAULT_INSTRUCTIONS else ""


def _parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Part("text", content)] if content else []
    parts: list[Part] = []
    for raw in content if isinstance(content, list) else []:
        if not isinstance(raw, dict):
            continue
        kind = raw.get("type")
        if kind in ("input_text", "output_text", "text", "refusal"):
            parts.append(Part("text", str(raw.get("text") or raw.get("refusal") or "")))
        elif kind == "input_image":
            url = raw.get("image_url")
            if isinstance(url, dict):
                url = url.get("url")
            if isinstance(url, str) and url:
                parts.append(Part("image", url=url, detail=raw.get("detail")))
        elif kind == "input_file":
            url = raw.get("file_data") or raw.get("file_url")
            if isinstance(url, str) and url:
                parts.append(Part("file", url=url, filename=raw.get("filename")))
    return parts


def _wrap_custom(value: Any) -> str:
    return orjson.dumps({"input": value if isinstance(value, str) else ""}).decode()


def read_conversation(body: dict[str, Any]) -> list[Message]:
    """``body["input"]`` as messages; consecutive tool results share one ``tool`` message, and tool
    calls and reasoning join the assistant message they follow."""
    messages: list[Message] = []
    names: dict[str, str] = {}

    def last(role: str) -> Message:
        if not messages or messages[-1].role != role:
            messages.append(Message(role))
        return messages[-1]

    for item in body.get("input") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            role = {"developer": "system"}.get(item.get("role"), item.get("role"))
            if role not in ("system", "user", "assistant"):
                continue
            parts = _parts(item.get("content"))
            if role == "assistant" and messages and messages[-1].role == "assistant" and not messages[-1].calls:
                messages[-1].parts.extend(parts)
            else:
                messages.append(Message(role, parts))
        elif kind in ("function_call", "custom_tool_call"):
            call_id = str(item.get("call_id") or item.get("id") or "")
            name = str(item.get("name") or "")
            names[call_id] = name
            custom = kind == "custom_tool_call"
            arguments = _wrap_custom(item.get("input")) if custom else item.get("arguments")
            if not isinstance(arguments, str):
                arguments = orjson.dumps(arguments or {}).decode()
            last("assistant").calls.append(Call(call_id, name, arguments, custom))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = str(item.get("call_id") or "")
            output = item.get("output")
            text = output if isinstance(output, str) else text_of_parts(output)
            images = [p for p in _parts(output) if p.kind != "text"] if isinstance(output, list) else []
            last("tool").results.append(Result(call_id, names.get(call_id, ""), text, images))
        elif kind == "reasoning":
            summary = "".join(p.get("text") or "" for p in item.get("summary") or [] if isinstance(p, dict))
            sealed = item.get("encrypted_content") if isinstance(item.get("encrypted_content"), str) else None
            target = last("assistant")
            if target.parts or target.calls:  # reasoning opens the next assistant message
                target = Message("assistant")
                messages.append(target)
            target.thoughts.append(Thought(summary, sealed))
    return messages


def append_merged(out: list[dict[str, Any]], role: str, field: str, content: list[Any]) -> None:
    """Add ``content`` as a ``role`` message, into the last one when it has that role already (the
    wires that want turns to alternate); nothing when it is empty."""
    if not content:
        return
    if out and out[-1]["role"] == role:
        out[-1][field].extend(content)
    else:
        out.append({"role": role, field: content})
