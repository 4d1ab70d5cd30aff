"""Thinking blocks ⇄ Codex reasoning items: our signatures carry the sealed reasoning so a
later turn can replay it."""

from __future__ import annotations

from typing import Any

from core.codex.events import ReasoningDone

SIGNATURE_PREFIX = "cxr1."  # our thinking signatures: cxr1.<reasoning item id>.<encrypted_content>


def reasoning_signature(reasoning: ReasoningDone) -> str:
    """The signature that lets a later turn replay ``reasoning`` ("" when it is not replayable)."""
    if not reasoning.encrypted_content:
        return ""
    return f"{SIGNATURE_PREFIX}{reasoning.item_id}.{reasoning.encrypted_content}"


def replayed_reasoning(signature: Any, summary: str) -> dict[str, Any] | None:
    """The ``reasoning`` input item a thinking block's signature stands for; None for signatures
    that are not ours (real Anthropic ones, or empty)."""
    if not isinstance(signature, str) or not signature.startswith(SIGNATURE_PREFIX):
        return None
    _item_id, dot, encrypted = signature[len(SIGNATURE_PREFIX) :].partition(".")
    if not dot or not encrypted:
        return None
    return {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": summary}] if summary else [],
        "encrypted_content": encrypted,
    }


def thinking_block(reasoning: ReasoningDone, with_text: bool = True) -> dict[str, Any] | None:
    """A finished reasoning item as a whole thinking block (None when it holds nothing to show or
    to replay)."""
    text = reasoning.summary if with_text else ""
    signature = reasoning_signature(reasoning)
    if not text and not signature:
        return None
    return {"type": "thinking", "thinking": text, "signature": signature}
