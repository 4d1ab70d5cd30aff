"""The Images API translator: JSON and multipart requests as an image_generation turn, the answer
as ``ImagesResponse`` (validated by the openai SDK's own types), the streamed events, refusals."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openai.types import ImageGenCompletedEvent, ImageGenPartialImageEvent, ImagesResponse

from core.codex.catalog import ModelCatalog
from core.codex.events import CodexStreamParser
from core.config import ConfigStore
from core.protocols import images
from core.protocols.base import BadRequest, ClientRequest, CollectedTurn
from core.turn.model import UpstreamEvent

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


@pytest.fixture
def setup(tmp_path: Path) -> tuple[ModelCatalog, Any]:
    cfg = ConfigStore(tmp_path, environ={}).current
    return ModelCatalog.from_config(cfg), cfg


def json_request(body: dict[str, Any], path: str = "/v1/images/generations") -> ClientRequest:
    return ClientRequest("POST", path, {}, {"content-type": "application/json"}, orjson.dumps(body))


def multipart_request(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> ClientRequest:
    """A real multipart body, encoded by httpx as the openai SDK sends it."""
    built = httpx.Request("POST", "http://x/v1/images/edits", data=fields, files=files)
    body = built.read()
    return ClientRequest("POST", "/v1/images/edits", {}, {"content-type": built.headers["content-type"]}, body)


def events_of(turn: list[dict[str, Any]]) -> list[UpstreamEvent]:
    parser = CodexStreamParser()
    out = []
    for data in turn:
        event = UpstreamEvent(data["type"], data, orjson.dumps(data))
        event.deltas = parser.feed(event.name, data)
        out.append(event)
    return out


ITEM = {"id": "ig_1", "type": "image_generation_call", "status": "completed", "background": "opaque", "output_format": "png",
        "quality": "auto", "size": "1024x1024", "result": PNG_B64, "revised_prompt": "a fox"}  # fmt: skip
TURN = [
    {"type": "response.created", "response": {"id": "resp_1"}},
    {"type": "response.output_item.added", "output_index": 0, "item": {"id": "ig_1", "type": "image_generation_call"}},
    {"type": "response.image_generation_call.partial_image", "item_id": "ig_1", "output_index": 0, "partial_image_index": 0,
     "partial_image_b64": PNG_B64},
    {"type": "response.output_item.done", "output_index": 0, "item": ITEM},
    {"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "output": [],
                                                "tool_usage": {"image_gen": {"input_tokens": 9, "output_tokens": 100, "total_tokens": 109}}}},
]  # fmt: skip


def test_a_generation_is_a_turn_with_the_image_tool(setup: tuple[ModelCatalog, Any]) -> None:
    catalog, cfg = setup
    prepared = images.parse_request(json_request({"prompt": "a fox", "model": "gpt-image-1", "size": "1536x1024", "output_format": "jpeg",
                                                  "output_compression": 60, "moderation": "low", "quality": "hd", "n": 1}), catalog, cfg)  # fmt: skip
    turn = prepared.turn
    assert turn is not None and turn.protocol == "images" and turn.model.id == "gpt-5.4" and turn.model.requested == "gpt-image-1"
    assert turn.body["tools"] == [{"type": "image_generation", "size": "1536x1024", "output_format": "jpeg", "output_compression": 60,
                                   "moderation": "low"}]  # fmt: skip
    assert turn.body["input"][0]["content"] == [{"type": "input_text", "text": "a fox"}] and not turn.stream


def test_an_edit_from_multipart_carries_the_images(setup: tuple[ModelCatalog, Any]) -> None:
    catalog, cfg = setup
    png = base64.b64decode(PNG_B64)
    request = multipart_request({"prompt": "add a hat", "model": "gpt-image-2", "stream": "true", "partial_images": "2"},
                                {"image[]": ("cat.png", png, "image/png")})  # fmt: skip
    prepared = images.parse_request(request, catalog, cfg)
    assert prepared.turn is not None and prepared.turn.stream and prepared.context.edit
    content = prepared.turn.body["input"][0]["content"]
    assert content[1] == {"type": "input_image", "image_url": "data:image/png;base64," + PNG_B64}
    assert prepared.turn.body["tools"][0]["partial_images"] == 2
    fields, files = images.read_form(request)
    content_type, body = images.encode_form({**fields, "model": "renamed"}, files)
    round_trip, again = images.read_form(ClientRequest("POST", "/v1/images/edits", {}, {"content-type": content_type}, body))
    assert round_trip["model"] == "renamed" and again[0].data == png and again[0].filename == "cat.png"


@pytest.mark.parametrize(("body", "path", "message"), [
    ({"prompt": "x", "mask": "m"}, "/v1/images/edits", "'mask' is not supported"),
    ({"prompt": "x"}, "/v1/images/edits", "an image to edit is required"),
    ({"prompt": "x", "images": [{"image_url": "file:///etc/passwd"}]}, "/v1/images/edits", "'images' must be a list"),
    ({"prompt": "x", "partial_images": 9}, "/v1/images/generations", "'partial_images' must be an integer from 0 to 3"),
    ({"prompt": "x" * 32_001}, "/v1/images/generations", "longer than"),
])  # fmt: skip
def test_refusals(setup: tuple[ModelCatalog, Any], body: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        images.parse_request(json_request(body, path), *setup)


def test_the_answer_is_what_the_openai_sdk_expects() -> None:
    collected = CollectedTurn()
    parser = CodexStreamParser()
    for event in events_of(TURN):
        collected.add(event.deltas)
        parser.feed(event.name, event.data)
    collected.finalize(parser)
    reply = images.render_response(collected, images.ImagesContext(1700000000, False, "png"))
    body = orjson.loads(reply.body)
    ImagesResponse.model_validate(body)
    assert body["data"] == [{"b64_json": PNG_B64, "revised_prompt": "a fox"}] and body["background"] == "opaque" and body["size"] == "1024x1024"
    assert "quality" not in body  # the backend's "auto" is not a value of the Images API
    assert body["usage"] == {"input_tokens": 9, "output_tokens": 100, "total_tokens": 109,
                             "input_tokens_details": {"text_tokens": 9, "image_tokens": 0}}  # fmt: skip


def test_the_stream_is_the_images_event_stream() -> None:
    translator = images.StreamTranslator(images.ImagesContext(1700000000, False, "png"))
    frames = b"".join(translator.feed(event) for event in events_of(TURN)).decode().strip().split("\n\n")
    assert [f.split("\n")[0] for f in frames] == ["event: image_generation.partial_image", "event: image_generation.completed"]
    partial, completed = (orjson.loads(f.split("data: ", 1)[1]) for f in frames)
    ImageGenPartialImageEvent.model_validate(partial)
    ImageGenCompletedEvent.model_validate(completed)
    assert completed["b64_json"] == PNG_B64 and completed["usage"]["total_tokens"] == 109
    empty = images.StreamTranslator(images.ImagesContext(1, True, "png"))
    text_only = [{"type": "response.output_text.delta", "delta": "no image"}, {"type": "response.completed", "response": {"output": []}}]
    out = b"".join(empty.feed(e) for e in events_of(text_only)).decode()
    assert out.startswith("event: error") and "image_generation_failed" in out
