"""Protocol translators: one package per client API, each with the same contract and layout.

The contract (``base.Translator``), the same names and signatures in every package:

* ``parse_request(request, catalog, cfg) -> Prepared``: client body → ``Turn`` plus the package's
  render context; a refusal raises ``ClientError``. Responses' takes ``compact=True`` as a keyword
  for ``/v1/responses/compact``. Ollama has two request kinds: its ``parse_request`` tells
  ``/api/chat`` from ``/api/generate`` by the path and the context remembers which
  (``OllamaContext.kind``); a request with nothing to generate comes back with ``turn=None``
  and is answered by ``ollama.render_load``.
* ``render_response(collected, context) -> Reply``: a whole Codex turn → the client's body.
* ``StreamTranslator(context)``: ``feed(event) -> bytes``, ``keepalive()``, ``fail(error)`` and
  ``content_type``; a ``base.DeltaStream``, whose ``feed`` walks each event's deltas through the
  one dispatch (``base.DELTA_HANDLERS``) to ``on_*`` methods (the Responses relay, which passes
  the backend's events on, has its own ``feed``).
* ``render_error(error) -> Reply``: any failure → the client's own error envelope.
* ``count_tokens(request, catalog, cfg) -> Reply`` where the API has local token counting
  (``anthropic``, ``gemini``: ``base.TokenCounter``); it refuses like ``parse_request``.

The layout, the same module names in every package: ``request`` (``parse_request``), ``response``
(the context and ``render_response``), ``stream`` (``StreamTranslator``), ``errors``
(``render_error``), and where a protocol needs them ``token_count``, ``models`` (model listings)
and modules for its own concerns (Anthropic's ``tools`` and ``thinking``, Gemini's ``casing``,
``contents``, ``schema`` and ``tools``, Chat's ``messages``, which Ollama builds on). Each
package's ``__init__`` re-exports its contract and what the gateway's routes use.

All of it is pure: no I/O, and nothing from the pipeline (``core.turn.pipeline``) or the gateway.
``items`` holds the Codex input-item helpers the packages share.
"""
