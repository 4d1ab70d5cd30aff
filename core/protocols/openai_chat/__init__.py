"""OpenAI Chat Completions ⇄ Codex Responses.

Modules: ``request`` (the body → Codex turn), ``messages`` (chat messages and tool definitions →
Codex input items and tools; the Ollama translator builds its input with them too), ``response``
(the context and the whole ``chat.completion``), ``stream`` (``chat.completion.chunk`` frames),
``errors`` (OpenAI's error envelope, which the Responses translator answers with as well).
"""

from core.protocols.openai_chat.errors import render_error
from core.protocols.openai_chat.request import parse_request
from core.protocols.openai_chat.response import ChatContext, render_response
from core.protocols.openai_chat.stream import StreamTranslator

__all__ = [
    "ChatContext",
    "StreamTranslator",
    "parse_request",
    "render_error",
    "render_response",
]
