"""The backend's events relayed to the client."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.sse import format_event
from core.protocols.base import DeltaStream, Failure, random_id
from core.protocols.openai_chat.errors import error_payload
from core.protocols.responses.response import ResponsesContext, with_output
from core.turn.model import UpstreamEvent


class StreamTranslator(DeltaStream):
    """Relays upstream events unchanged, except the terminal one, whose empty output is filled in.
    It reads the backend's events, not their deltas, so ``feed`` is its own; the closing-frame
    guard and the keep-alive are the shared ones."""

    def __init__(self, context: ResponsesContext) -> None:
        self._items: list[dict[str, Any]] = []
        self._response_id: str | None = None
        self._ids: dict[int, str] = {}  # output_index → the item id output_item.added announced

    def feed(self, event: UpstreamEvent) -> bytes:
        name, data = event.name, event.data
        if (index := data.get("output_index")) is not None and (fixed := self._same_id(name, index, data)) is not None:
            data = fixed
            event = UpstreamEvent(name, data, orjson.dumps(data))
        if name == "response.output_item.done" and isinstance(data.get("item"), dict):
            self._items.append(data["item"])
        elif name == "response.created":
            self._response_id = (data.get("response") or {}).get("id")
        elif name in ("response.completed", "response.incomplete", "response.failed"):
            self._done = True
            response = data.get("response") or {}
            if not response.get("output") and self._items:
                return format_event(name, orjson.dumps({**data, "response": with_output(response, self._items)}))
            if self._renamed(response.get("output")):
                return format_event(name, orjson.dumps(data))
        elif name == "error":
            # A bare error event (or our synthetic "stream_disconnected") becomes response.failed,
            # the terminal event Responses clients such as Codex CLI act on.
            error = event.data.get("error") if isinstance(event.data.get("error"), dict) else event.data
            self._done = True
            return self._failed({k: error.get(k) for k in ("type", "code", "message") if error.get(k) is not None})
        return format_event(name, event.raw)

    def _same_id(self, name: str, index: int, data: dict[str, Any]) -> dict[str, Any] | None:
        """An item keeps the id ``output_item.added`` gave it: the backend has been seen to send a
        reasoning item's ``.done`` (and events about it) under another id, and clients that key
        items by id (opencode) then break. Returns the corrected event, or None when it is fine."""
        item = data.get("item") if isinstance(data.get("item"), dict) else None
        if name == "response.output_item.added":
            if item is not None and isinstance(item.get("id"), str):
                self._ids[index] = item["id"]
            return None
        known = self._ids.get(index)
        if known is None:
            return None
        if item is not None and item.get("id") not in (None, known):
            return {**data, "item": {**item, "id": known}}
        if data.get("item_id") not in (None, known):
            return {**data, "item_id": known}
        return None

    def _renamed(self, output: Any) -> bool:
        """The terminal response's items with the ids their stream announced (in place)."""
        changed = False
        for index, item in enumerate(output if isinstance(output, list) else ()):
            known = self._ids.get(index)
            if isinstance(item, dict) and known is not None and item.get("id") not in (None, known):
                item["id"] = known
                changed = True
        return changed

    def _failed(self, error: dict[str, Any]) -> bytes:
        response = {"id": self._response_id or random_id("resp_proxy_"), "object": "response", "status": "failed",
                    "error": error, "output": self._items}
        return format_event("response.failed", orjson.dumps({"type": "response.failed", "response": response}))

    def error_frame(self, error: Failure) -> bytes:
        payload = error_payload(error)["error"]
        return self._failed({"type": payload["type"], "code": payload["code"], "message": payload["message"]})
