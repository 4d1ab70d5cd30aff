"""Codex Responses passthrough: the client already speaks the backend's
language, so requests are filtered to the allow-list and events are relayed byte for byte.

Modules: ``request`` (the body filtered to what the backend takes), ``response`` (the context and
the whole response object), ``stream`` (the relay). Errors are OpenAI's envelope
(``openai_chat.errors``), which Responses clients read.
"""

from core.protocols.openai_chat.errors import render_error
from core.protocols.responses.request import parse_request
from core.protocols.responses.response import ResponsesContext, render_response
from core.protocols.responses.stream import StreamTranslator

__all__ = [
    "ResponsesContext",
    "StreamTranslator",
    "parse_request",
    "render_error",
    "render_response",
]
