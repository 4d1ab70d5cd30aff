"""Ollama ``/api/chat`` and ``/api/generate`` ⇄ Codex Responses, plus the
model-info answers (``/api/tags``, ``/api/show``, ``/api/ps``) built from the catalog.

Chat messages are rewritten into OpenAI Chat messages (Ollama's tool format already is OpenAI's)
and handed to the Chat translator's helpers, so both protocols build Codex input one way. Answers
follow real Ollama: NDJSON lines, a final line with ``done``/``done_reason`` and measured counts
(never a repeat of the reply), and ``{"error": ...}`` when the upstream fails mid-stream.

Two request kinds share one contract: ``parse_request`` tells ``/api/chat`` from ``/api/generate``
by the path and the context keeps which (``OllamaContext.kind``), so answers and streams take the
shape of the kind asked for. ``render_load`` answers a request with nothing to generate.

Modules: ``request`` (chat and generate bodies → Codex turn), ``response`` (the context, answer
lines and the whole answer), ``stream`` (NDJSON lines), ``models`` (``/api/tags``, ``/api/show``,
``/api/ps`` entries), ``errors`` (``{"error": ...}``).
"""

from core.protocols.ollama.errors import render_error
from core.protocols.ollama.models import ps_entry, show_payload, tags_payload
from core.protocols.ollama.request import parse_request, resolve_model
from core.protocols.ollama.response import OllamaContext, created_at, render_load, render_response
from core.protocols.ollama.stream import StreamTranslator

__all__ = [
    "OllamaContext",
    "StreamTranslator",
    "created_at",
    "parse_request",
    "ps_entry",
    "render_error",
    "render_load",
    "render_response",
    "resolve_model",
    "show_payload",
    "tags_payload",
]
