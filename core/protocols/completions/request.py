"""A Completions body as a Codex turn."""

from __future__ import annotations

from typing import Any

from core.codex.catalog import ModelCatalog
from core.codex.request import reasoning_fields, stable_conversation_key
from core.protocols.base import BadRequest, ClientRequest, expect_object
from core.protocols.completions.response import CompletionContext
from core.protocols.openai_chat.request import reasoning_effort, resolve_model
from core.settings import Settings
from core.turn.model import Prepared, Turn

INSTRUCTIONS = (
    "You are a text completion engine. Reply with only the text that continues the given text exactly where it "
    "stops: no preamble, no explanation, no quotes or code fences around it, and never repeat the given text."
)
FILL_IN = (
    "You are a text completion engine. The user gives the text before and after a gap. Reply with only the text "
    "that fills the gap so that both read on seamlessly: no preamble, no explanation, no quotes or code fences."
)


def parse_request(request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Prepared:
    body = expect_object(request.json())
    prompt = _prompt(body.get("prompt"))
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise BadRequest("Invalid request: 'suffix' must be a string", code="invalid_request", param="suffix")
    model = resolve_model(body, catalog)
    effort = reasoning_effort(body, model, catalog, cfg)

    if suffix:
        text = f"Text before the gap:\n{prompt}\n\nText after the gap:\n{suffix}"
    else:
        text = prompt
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]
    instructions = FILL_IN if suffix else INSTRUCTIONS
    codex: dict[str, Any] = {"model": model.id, "instructions": instructions, "input": items, "tools": [],
                             **reasoning_fields(effort, summary=None)}
    # temperature, max_tokens, stop, n, logprobs, best_of, penalties, logit_bias, seed: the backend
    # takes none of them (one choice, its own sampling); ``user`` keys the prompt cache.
    user = body.get("user")
    key = user.strip() if isinstance(user, str) and user.strip() else stable_conversation_key(model.id, instructions, items)
    options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
    context = CompletionContext(model=model.display, echo=prompt if body.get("echo") is True else "",
                                include_usage=bool(options.get("include_usage")))
    return Prepared(Turn("completions", codex, model, body.get("stream") is True, key), context)


def _prompt(raw: Any) -> str:
    """One prompt: a string, or an array holding one string (the API's batch of one)."""
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
        raw = raw[0]
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        raise BadRequest("Invalid request: token-id prompts are not supported; send the prompt as text", code="invalid_request", param="prompt")
    if isinstance(raw, list) and len(raw) > 1:
        raise BadRequest("Invalid request: one prompt per request (the backend answers one choice)", code="invalid_request", param="prompt")
    raise BadRequest("Invalid request: 'prompt' must be a string", code="invalid_request", param="prompt")
