"""Gemini ``generateContent`` / ``streamGenerateContent`` ⇄ Codex Responses.

Requests arrive the way Google's SDKs write them: camelCase on the wire, but google-genai (Python)
also sends snake_case keys (``thinking_budget``, ``parameters_json_schema``), which the real API
accepts too, so every field is read in both spellings. Streams are SSE with ``?alt=sse`` and
otherwise the JSON array Google sends (``[`` … ``,`` … ``]``), written incrementally either way.

Modules: ``casing`` (reading both spellings), ``request`` (the body → Codex turn), ``contents``
(``contents`` and ``systemInstruction`` → input items), ``schema`` (Gemini's schemas as JSON
Schema), ``tools`` (function declarations and ``toolConfig``), ``response`` (the context and the
whole answer), ``stream`` (SSE or JSON-array chunks), ``models`` (model entries), ``token_count``
(``countTokens``), ``errors`` (the ``google.rpc`` error envelope).
"""

from core.protocols.gemini.errors import render_error
from core.protocols.gemini.models import GENERATION_METHODS, model_entry, resolved_entry
from core.protocols.gemini.request import ACTION_PATH, GENERATE_ACTIONS, parse_request
from core.protocols.gemini.response import GeminiContext, render_response
from core.protocols.gemini.stream import StreamTranslator
from core.protocols.gemini.token_count import count_tokens

__all__ = [
    "ACTION_PATH",
    "GENERATE_ACTIONS",
    "GENERATION_METHODS",
    "GeminiContext",
    "StreamTranslator",
    "count_tokens",
    "model_entry",
    "parse_request",
    "render_error",
    "render_response",
    "resolved_entry",
]
