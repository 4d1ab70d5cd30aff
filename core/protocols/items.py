"""Helpers for building Codex ``input`` items, shared by the protocol translators."""

from __future__ import annotations

from typing import Any

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
