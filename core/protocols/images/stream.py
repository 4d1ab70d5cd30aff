"""``stream: true``: the Images API's events — ``image_generation.partial_image`` as the backend
sends partial images, ``image_generation.completed`` with the image and usage (``image_edit.*``
for edits)."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.events import Finished, ImageGenerated
from core.protocols.base import DeltaStream, Failure
from core.protocols.images.response import ImagesContext, item_fields, no_image_error, usage_of
from core.protocols.openai_chat.errors import error_payload
from core.turn.model import UpstreamEvent

PARTIAL_EVENT = "response.image_generation_call.partial_image"


def _frame(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


class StreamTranslator(DeltaStream):
    def __init__(self, context: ImagesContext) -> None:
        self._context = context
        self._prefix = "image_edit" if context.edit else "image_generation"
        self._images: list[tuple[ImageGenerated, dict[str, Any]]] = []
        self._text: list[str] = []
        self._response: dict[str, Any] | None = None  # the terminal event's, for the tool's usage

    def feed(self, event: UpstreamEvent) -> bytes:
        if event.name == PARTIAL_EVENT and isinstance(event.data.get("partial_image_b64"), str):
            return _frame(f"{self._prefix}.partial_image", {
                **self._common({}), "b64_json": event.data["partial_image_b64"],
                "partial_image_index": event.data.get("partial_image_index", 0),
            })  # fmt: skip
        if event.name == "response.output_item.done":
            item = event.data.get("item") or {}
            for delta in event.deltas:
                if isinstance(delta, ImageGenerated):
                    self._images.append((delta, item_fields(item)))
            return b""
        if event.name in ("response.completed", "response.incomplete"):
            self._response = event.data.get("response")
        return DeltaStream.feed(self, event)

    def on_text(self, delta: Any) -> bytes:
        self._text.append(delta.text)
        return b""

    def on_finished(self, delta: Finished) -> bytes:
        if not self._images:
            return self.fail(no_image_error("".join(self._text)))
        self._done = True
        usage = usage_of(self._response, self._context.edit) or {}
        return b"".join(_frame(f"{self._prefix}.completed", {**self._common(fields), "b64_json": image.result, "usage": usage})
                        for image, fields in self._images)  # fmt: skip

    def _common(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {"created_at": self._context.created, "output_format": self._context.output_format,
                "background": fields.get("background", "auto"), "quality": fields.get("quality", "auto"),
                "size": fields.get("size", "auto")}  # fmt: skip

    def error_frame(self, error: Failure) -> bytes:
        return _frame("error", error_payload(error))
