"""Anthropic Messages ⇄ Codex Responses, so that Claude Code and the Anthropic SDKs run
unmodified against ``ANTHROPIC_BASE_URL=http://127.0.0.1:8080``.

What an Anthropic client expects, and how this package provides it:

* Thinking round-trips. A streamed ``thinking`` block ends with a ``signature_delta`` whose
  signature carries the reasoning item (id + ``encrypted_content``); reasoning without a summary
  (or with ``thinking.display: "omitted"``, as ``claude -p`` sends) is a thinking block with empty
  text and that signature. When the client sends the block back, it is replayed upstream as a
  ``reasoning`` item (without its id, as Codex CLI does: with ``store:false`` an id refers to
  nothing). Other signatures (real Anthropic ones) and ``redacted_thinking`` are dropped. If the
  next turn lands on another account, the backend refuses the sealed reasoning; the pipeline then
  drops it and retries (``invalid_encrypted_content``).
* Block order is kept: a user turn ``[tool_result, text]`` stays in that order.
* Web search: only a client-declared ``web_search_*`` tool becomes the backend's hosted search.
  Nothing is added by default, and Claude Code's own ``WebSearch`` function is left alone (it runs
  its search as a sub-request that declares ``web_search_20250305``, honouring its permissions).
* ``response.incomplete`` ends with ``stop_reason: "max_tokens"`` (``"refusal"`` for a content
  filter), never a silent ``end_turn``.
* Keep-alives are real ``event: ping`` frames; a failure after the stream began is a real
  ``event: error`` (the SDKs raise it); nothing follows it.
* Usage always carries ``cache_creation_input_tokens`` and ``cache_read_input_tokens`` (0 when
  none), as the real API does; ``input_tokens`` excludes the cached part.
* The response echoes the model name the client asked for (``claude-sonnet-4-5``), which is what
  Claude Code keys its model display and context window on; the request log records the Codex
  model that served it.
* Tool results holding images are sent as an array of ``input_text``/``input_image`` parts, the
  form Codex CLI uses for such outputs, not moved into a user message of their own.
* ``speed: "fast"`` (Anthropic's fast mode) asks for the priority tier, like a ``-fast`` suffix.
* ``tool_choice: {"type":"none"}`` is accepted; ``disable_parallel_tool_use`` turns parallel calls
  off (they are on otherwise, as on Anthropic's API).
* Tools declared with ``defer_loading`` (Claude Code's tool search) are sent only once a
  ``tool_reference`` block in the conversation has loaded them.

Modules: ``request`` (Messages body → Codex turn), ``tools`` (tool definitions and choice, and the
``Read`` sanitising both ways), ``thinking`` (signatures ⇄ reasoning items), ``response`` (the
context and the whole-message answer), ``stream`` (the event stream), ``token_count``
(``count_tokens``), ``errors`` (the error envelope and the wording of refusals).
"""

from core.protocols.anthropic.errors import render_error
from core.protocols.anthropic.request import parse_request
from core.protocols.anthropic.response import AnthropicContext, render_response
from core.protocols.anthropic.stream import StreamTranslator
from core.protocols.anthropic.token_count import count_tokens

__all__ = [
    "AnthropicContext",
    "StreamTranslator",
    "count_tokens",
    "parse_request",
    "render_error",
    "render_response",
]
