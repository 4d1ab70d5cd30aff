"""``POST /v1/messages/count_tokens``: a local estimate."""

from __future__ import annotations

import math
import re
from typing import Any

from core.codex.catalog import ModelCatalog
from core.protocols.anthropic.request import message_list, requested_model
from core.protocols.anthropic.tools import tool_list
from core.protocols.base import ClientRequest, Reply, expect_object, json_reply
from core.settings import Settings

IMAGE_TOKENS = 1600  # what Anthropic bills a full-size image; base64 payloads are never counted as text
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_SKIPPED_KEYS = frozenset({"cache_control", "signature"})


def count_tokens(request: ClientRequest, catalog: ModelCatalog, cfg: Settings) -> Reply:
    """``POST /v1/messages/count_tokens``: a local estimate, no upstream call and no account needed.
    No tokenizer can be downloaded offline, so: ceil(non-CJK chars / 4) + 1 per CJK character for
    text, a little structure per message, tool and object key, and a flat ``IMAGE_TOKENS`` per
    image or binary document (base64 data is never counted as text)."""
    body = expect_object(request.json())
    requested_model(body)
    message_list(body)
    total = _estimate(body.get("model"))
    if body.get("system") is not None:
        total += _estimate(body["system"]) + 4
    total += sum(4 + _estimate(m.get("role")) + _estimate(m.get("content")) for m in body["messages"])
    total += sum(16 + _estimate(tool) for tool in tool_list(body.get("tools")))
    total += _estimate(body.get("tool_choice")) + _estimate(body.get("thinking")) + 3
    return json_reply(200, {"input_tokens": max(1, total)})


def _estimate(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        text = value.strip()
        cjk = len(_CJK.findall(text))
        return math.ceil((len(text) - cjk) / 4) + cjk
    if isinstance(value, bool | int | float):
        return _estimate(str(value))
    if isinstance(value, list):
        return sum(_estimate(v) for v in value) + len(value)
    if isinstance(value, dict):
        source = value.get("source")
        if isinstance(source, dict) and source.get("type") in ("base64", "url", "file"):
            return IMAGE_TOKENS
        if value.get("type") == "redacted_thinking":
            return 0
        return 2 + sum(_estimate(k) + _estimate(v) for k, v in value.items() if k not in _SKIPPED_KEYS)
    return 0
