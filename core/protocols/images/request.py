"""An Images API request (JSON, or multipart for edits) as a Codex turn: the prompt (and the images
to edit) as the user's message, the backend's ``image_generation`` tool with the options it takes,
on the host model ``images.host_model``."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from core.codex.catalog import ModelCatalog, ResolvedModel
from core.protocols.base import BadRequest, ClientRequest, expect_object, now_seconds
from core.protocols.images.response import ImagesContext
from core.protocols.items import image_url
from core.settings import Settings
from core.turn.model import Prepared, Turn

SIZES = ("1024x1024", "1024x1536", "1536x1024", "2048x2048", "2048x3072", "3072x2048", "3840x2160", "2160x3840", "2304x3072", "auto")
FORMATS = ("png", "jpeg", "webp")
MAX_PROMPT = 32_000


@dataclass(slots=True)
class Upload:
    field: str
    filename: str
    content_type: str
    data: bytes


def read_form(request: ClientRequest) -> tuple[dict[str, Any], list[Upload]]:
    """The body's fields (JSON, or a multipart form's text fields) and its uploaded files."""
    content_type = request.headers.get("content-type") or ""
    if not content_type.lower().startswith("multipart/form-data"):
        return expect_object(request.json()), []
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n"
    message: Message = BytesParser(policy=HTTP).parsebytes(head + request.body)
    if not message.is_multipart():
        raise BadRequest("Malformed multipart/form-data body", code="invalid_request")
    fields: dict[str, Any] = {}
    files: list[Upload] = []
    for part in message.get_payload():  # type: ignore[union-attr]
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files.append(Upload(name, filename, part.get_content_type(), payload))
        else:
            fields[name] = payload.decode("utf-8", "replace")
    return fields, files


def encode_form(fields: dict[str, Any], files: list[Upload]) -> tuple[str, bytes]:
    """(content type, body) of a multipart form, to pass an edit on to a provider."""
    boundary = "codexproxy" + secrets.token_hex(12)
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for upload in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{upload.field}"; filename="{upload.filename}"\r\n'
                     f"Content-Type: {upload.content_type}\r\n\r\n".encode() + upload.data + b"\r\n")  # fmt: skip
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


def _int(fields: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = low - 1
    if isinstance(value, bool) or not low <= number <= high:
        raise BadRequest(f"'{name}' must be an integer from {low} to {high}", code="invalid_request", param=name)
    return number


def _choice(fields: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return default
    if value not in allowed:
        raise BadRequest(f"'{name}' must be one of: {', '.join(allowed)}", code="invalid_request", param=name)
    return str(value)


def _images(fields: dict[str, Any], files: list[Upload]) -> list[str]:
    urls = [image_url(base64.b64encode(f.data).decode(), f.content_type if f.content_type.startswith("image/") else None)
            for f in files if f.field in ("image", "image[]")]  # fmt: skip
    for entry in fields.get("images") or []:  # the JSON form: [{"image_url": "data:..." | "https://..."}]
        url = entry.get("image_url") if isinstance(entry, dict) else None
        if not isinstance(url, str) or not url.startswith(("data:image/", "http://", "https://")):
            raise BadRequest("'images' must be a list of {\"image_url\": a data: or https: URL}", code="invalid_request", param="images")
        urls.append(url)
    return urls


def tool_of(fields: dict[str, Any], output_format: str, stream: bool) -> dict[str, Any]:
    """The ``image_generation`` tool with the options the backend accepts."""
    tool: dict[str, Any] = {"type": "image_generation", "size": _choice(fields, "size", SIZES, "auto"), "output_format": output_format}
    compression = _int(fields, "output_compression", 0, 100)
    if compression is not None:
        if output_format == "png" and compression != 100:
            raise BadRequest("'output_compression' applies to jpeg and webp only", code="invalid_request", param="output_compression")
        if output_format != "png":
            tool["output_compression"] = compression
    if (background := _choice(fields, "background", ("auto", "opaque", "transparent"))) == "transparent":
        raise BadRequest("'background: transparent' is not available through the Codex backend (auto or opaque)", code="invalid_request",
                         param="background")  # fmt: skip
    if background:
        tool["background"] = background
    if moderation := _choice(fields, "moderation", ("auto", "low")):
        tool["moderation"] = moderation
    partial = _int(fields, "partial_images", 0, 3)
    if partial and stream:
        tool["partial_images"] = partial
    return tool


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Prepared:
    fields, files = read_form(request)
    edit = request.path.endswith("/edits")
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRequest("'prompt' is required", code="invalid_request", param="prompt")
    if len(prompt) > MAX_PROMPT:
        raise BadRequest(f"'prompt' is longer than {MAX_PROMPT} characters", code="invalid_request", param="prompt")
    if _int(fields, "n", 1, 10) not in (None, 1):
        raise BadRequest("'n' must be 1: the Codex backend makes one image per request", code="invalid_request", param="n")
    if fields.get("response_format") not in (None, "", "b64_json"):
        raise BadRequest("'response_format' must be b64_json: images come back inline, never as URLs", code="invalid_request",
                         param="response_format")  # fmt: skip
    if fields.get("mask") is not None or any(f.field == "mask" for f in files):
        raise BadRequest("'mask' is not supported: the Codex backend edits whole images from the prompt", code="invalid_request", param="mask")
    stream = fields.get("stream") in (True, "true", "True", "1")
    output_format = _choice(fields, "output_format", FORMATS, "png") or "png"
    content: list[dict[str, Any]] = [{"type": "input_text", "text": prompt}]
    if edit:
        urls = _images(fields, files)
        if not urls:
            raise BadRequest("an image to edit is required ('image' file, or 'images' in a JSON body)", code="invalid_request", param="image")
        content += [{"type": "input_image", "image_url": url} for url in urls]
    host = catalog.pool_model(cfg.images.host_model)
    requested = fields.get("model") if isinstance(fields.get("model"), str) and fields.get("model") else "gpt-image-2"
    body = {"model": host, "instructions": "", "input": [{"type": "message", "role": "user", "content": content}],
            "tools": [tool_of(fields, output_format, stream)]}  # fmt: skip
    context = ImagesContext(now_seconds(), edit, output_format)
    return Prepared(Turn("images", body, ResolvedModel(host, requested), stream), context)
