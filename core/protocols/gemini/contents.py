"""``systemInstruction`` and ``contents`` as Codex instructions and input items."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from core.protocols.base import BadRequest
from core.protocols.gemini.casing import pick
from core.protocols.items import CallLedger, image_url, pair_tool_calls

# Text-like inline data is read as text: the backend has no generic file part for it.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml", "application/javascript")


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):  # lenient: a bare string is one text part
        return [{"text": content}]
    if not isinstance(content, dict):
        raise BadRequest(f"{where} must be an object with 'parts'")
    parts = content.get("parts")
    if isinstance(parts, dict):
        parts = [parts]
    if not isinstance(parts, list) or not parts:
        raise BadRequest(f"{where}.parts must be a non-empty array")
    if not all(isinstance(p, dict) for p in parts):
        raise BadRequest(f"{where}.parts entries must be objects")
    return parts


def translate_contents(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """``systemInstruction`` and ``contents`` as Codex instructions and input items."""
    system = pick(body, "systemInstruction")
    instructions = ""
    if system is not None:
        instructions = "\n".join(p["text"] for p in _parts(system, "systemInstruction") if isinstance(p.get("text"), str) and not p.get("thought"))
    contents = body.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise BadRequest("contents must be a non-empty array")
    ledger = CallLedger()
    items: list[dict[str, Any]] = []
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        parts = _parts(content, where)
        role = content.get("role") if isinstance(content, dict) else "user"
        if role == "model":
            items += _model_items(parts, ledger)
        elif role in (None, "", "user", "function", "tool"):
            items += _user_items(parts, ledger, where)
        else:
            raise BadRequest(f"{where}.role must be 'user' or 'model', not {role!r}")
    return instructions.strip(), pair_tool_calls(items)


def _model_items(parts: list[dict[str, Any]], ledger: CallLedger) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "".join(texts)}]})
            texts.clear()

    for part in parts:
        if part.get("thought"):
            continue  # thoughts are never replayed (the backend has its own encrypted reasoning)
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(call := pick(part, "functionCall"), dict):
            flush()
            name = str(call.get("name") or "")
            args = call.get("args")
            items.append({
                "type": "function_call",
                "call_id": ledger.call(call.get("id"), name),
                "name": name,
                "arguments": orjson.dumps(args if args is not None else {}).decode(),
            })
    flush()
    return items


def _user_items(parts: list[dict[str, Any]], ledger: CallLedger, where: str) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    follow_up: list[dict[str, Any]] = []  # media returned by tools, shown to the model as a user turn
    for part in parts:
        if part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            content.append({"type": "input_text", "text": part["text"]})
        elif isinstance(inline := pick(part, "inlineData"), dict):
            content.append(_inline_part(inline, where))
        elif isinstance(file := pick(part, "fileData"), dict):
            content.append(_file_part(file, where))
        elif isinstance(response := pick(part, "functionResponse"), dict):
            name = str(response.get("name") or "")
            output = _function_output(response.get("response"))
            call_id = ledger.result(response.get("id"), name)
            if call_id is None:  # answers no call we know of: keep it as context rather than fail
                content.append({"type": "input_text", "text": f"[{name} result] {output}"})
            else:
                outputs.append({"type": "function_call_output", "call_id": call_id, "output": output})
            for media in response.get("parts") or ():
                if isinstance(media, dict) and isinstance(inline := pick(media, "inlineData"), dict):
                    follow_up.append(_inline_part(inline, where))
        # executableCode, codeExecutionResult, videoMetadata…: nothing the backend can take
    items: list[dict[str, Any]] = list(outputs)
    if content or not outputs:
        items.append({"type": "message", "role": "user", "content": content or [{"type": "input_text", "text": ""}]})
    if follow_up:
        items.append({"type": "message", "role": "user", "content": follow_up})
    return items


def _function_output(response: Any) -> str:
    """Tool results as text. ``{"output": "..."}`` (Gemini CLI, the SDK's automatic function
    calling) is unwrapped; anything else is sent as JSON."""
    if isinstance(response, dict) and len(response) == 1:
        ((key, value),) = response.items()
        if key in ("output", "result", "content") and isinstance(value, str):
            return value
    return orjson.dumps(response if response is not None else {}).decode()


def _inline_part(inline: dict[str, Any], where: str) -> dict[str, Any]:
    mime = str(pick(inline, "mimeType") or "application/octet-stream").lower()
    data = inline.get("data")
    if not isinstance(data, str):
        raise BadRequest(f"{where}: inlineData.data must be base64 text")
    if mime.startswith("image/"):
        return {"type": "input_image", "image_url": image_url(data, mime)}
    if mime.startswith(_TEXT_TYPES):
        try:
            return {"type": "input_text", "text": base64.b64decode(data).decode("utf-8", "replace")}
        except (binascii.Error, ValueError):
            raise BadRequest(f"{where}: inlineData.data is not valid base64") from None
    if mime.startswith(("audio/", "video/")):
        raise BadRequest(f"{where}: {mime} input is not supported (the Codex backend takes text, images and documents)")
    name = pick(inline, "displayName") or ("document.pdf" if mime == "application/pdf" else "file")
    return {"type": "input_file", "filename": str(name), "file_data": f"data:{mime};base64,{data}"}


def _file_part(file: dict[str, Any], where: str) -> dict[str, Any]:
    uri = str(pick(file, "fileUri") or "")
    mime = str(pick(file, "mimeType") or "").lower()
    if not uri.startswith(("https://", "http://")) or "generativelanguage.googleapis.com" in uri:
        raise BadRequest(f"{where}: fileData {uri!r} cannot be read here (Files API and Cloud Storage URIs are Google-only); send the file as inlineData")
    if mime.startswith("image/"):
        return {"type": "input_image", "image_url": uri}
    return {"type": "input_file", "file_url": uri}
