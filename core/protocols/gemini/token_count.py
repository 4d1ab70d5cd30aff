"""``:countTokens``: a local estimate."""

from __future__ import annotations

from core.codex.catalog import ModelCatalog
from core.protocols.base import ClientRequest, Reply, json_reply
from core.protocols.gemini.contents import translate_contents
from core.protocols.gemini.request import request_body
from core.settings import Settings


def count_tokens(request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Reply:
    """``:countTokens``: an estimate (about four characters a token, 258 a picture, as Gemini counts
    images); the backend has no tokenizer endpoint. Clients use it for budgeting only. The model
    and settings do not change the estimate."""
    instructions, items = translate_contents(request_body(request))
    text = len(instructions)
    images = 0
    for item in items:
        for part in item.get("content") or ():
            images += part.get("type") == "input_image"
            text += len(part.get("text") or "")
        text += len(item.get("output") or "") + len(item.get("arguments") or "")
    return json_reply(200, {"totalTokens": max(1, text // 4) + 258 * images})
