"""OpenAI's legacy Completions (``POST /v1/completions``: a prompt in, its continuation out) ⇄ Codex.

Editors still use it for inline completions and edit predictions (Zed's, for one). The backend is a
chat model, so the prompt (and a ``suffix``, for fill-in-the-middle) becomes one user message with
instructions to answer with the continuation only. Modules: ``request``, ``response`` (the context
and the whole ``text_completion``), ``stream`` (its chunks). Errors are OpenAI's envelope.
"""

from core.protocols.completions.request import parse_request
from core.protocols.completions.response import CompletionContext, render_response
from core.protocols.completions.stream import StreamTranslator
from core.protocols.openai_chat.errors import render_error

__all__ = [
    "CompletionContext",
    "StreamTranslator",
    "parse_request",
    "render_error",
    "render_response",
]
