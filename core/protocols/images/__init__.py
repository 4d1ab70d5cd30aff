"""OpenAI's Images API (``/v1/images/generations`` and ``/v1/images/edits``) ⇄ a Codex turn that
runs the backend's hosted ``image_generation`` tool on a host model (``images.host_model``).

Modules: ``request`` (the JSON or multipart body → the Codex turn), ``response`` (the context and
``ImagesResponse`` with ``b64_json``), ``stream`` (``image_generation.partial_image`` /
``.completed`` events for ``stream: true``); errors use OpenAI's envelope.
"""

from core.protocols.images.request import encode_form, parse_request, read_form
from core.protocols.images.response import ImagesContext, render_response
from core.protocols.images.stream import StreamTranslator
from core.protocols.openai_chat.errors import render_error

__all__ = ["ImagesContext", "StreamTranslator", "encode_form", "parse_request", "read_form", "render_error", "render_response"]
