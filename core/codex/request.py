"""Codex request bodies: the backend's allow-list, conversation identity and schema preparation."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

try:
    from compression import zstd  # Python 3.14+
except ImportError:  # earlier: the backport (mitmproxy depends on it too)
    from backports import zstd  # type: ignore[no-redef]

# The only top-level fields the backend's HTTP endpoint accepts; it answers anything else with a 400.
ALLOWED_FIELDS = frozenset(
    {
        "model",
        "instructions",
        "input",
        "stream",
        "store",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "include",
        "prompt_cache_key",
        "text",
        "service_tier",
        "client_metadata",
    }
)
COMPACT_FIELDS = frozenset({"model", "input", "instructions", "tools", "parallel_tool_calls", "reasoning", "text"})
DEFAULT_INSTRUCTIONS = "You are a helpful assistant."

_SYSTEM_REMINDER = re.compile(r"^(\s*<system-reminder>.*?</system-reminder>)+\s*", re.DOTALL)


def wire_service_tier(tier: str | None) -> str | None:
    """Clients say "fast"; the backend calls it "priority"."""
    if not tier:
        return None
    return "priority" if tier == "fast" else tier


def reasoning_fields(effort: str | None, summary: str | None = "auto") -> dict[str, Any]:
    """``reasoning`` plus the ``include`` that lets reasoning items be replayed next turn."""
    if not effort:
        return {}
    reasoning: dict[str, Any] = {"effort": effort}
    if summary:
        reasoning["summary"] = summary
    return {"reasoning": reasoning, "include": ["reasoning.encrypted_content"]}


def scoped_conversation_id(scope: str, key: str) -> str:
    """The upstream prompt-cache id: the client's key, scoped to one account (never sent verbatim)."""
    return "cp_" + hashlib.sha256(f"conversation\0{scope}\0{key}".encode()).hexdigest()[:32]


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("input_text", "text"))
    return ""


def stable_conversation_key(model: str, instructions: str, items: list[Any]) -> str | None:
    """A key derived from what stays fixed across a conversation's turns: model, system text and
    the first user message. Same conversation → same key → same account and prompt cache."""
    first_user = next(
        (i for i in items if isinstance(i, dict) and i.get("role") == "user" and i.get("type", "message") == "message"),
        None,
    )
    user_text = _message_text(first_user.get("content")) if first_user else ""
    stripped = _SYSTEM_REMINDER.sub("", user_text) or user_text
    system = instructions.strip()[:2000]
    if not system and not stripped:
        return None
    d = hashlib.sha256(f"{model}\0{system}\0{stripped}".encode()).hexdigest()
    return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"  # str(uuid.UUID(d[:32])), without the object


def prepare_schema(schema: Any) -> Any:
    """Structured-output schemas: every object node gets ``additionalProperties: false`` (strict mode
    requires it) and object nodes without ``properties`` get an empty one. Returns a copy."""
    if isinstance(schema, list):
        return [prepare_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: prepare_schema(v) for k, v in schema.items()}
    if out.get("type") == "object" or "properties" in out:
        out.setdefault("properties", {})
        out.setdefault("additionalProperties", False)
    return out


# Keywords OpenAI's strict structured output understands; a schema using others is sent non-strict.
_STRICT_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf",
        "$ref", "$defs", "definitions", "description", "title", "pattern", "format", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
    }
)  # fmt: skip


def strict_compatible(schema: Any) -> bool:
    """True when ``schema`` can be sent with ``strict: true``: every object lists all of its
    properties as required and only supported keywords appear. Schemas with optional fields or
    defaults (pydantic models with defaults, most OpenAPI schemas) go non-strict instead of being
    rejected or silently changed."""
    if isinstance(schema, list):
        return all(strict_compatible(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if any(key not in _STRICT_KEYWORDS for key in schema) or schema.get("additionalProperties") not in (None, False):
        return False
    properties = schema.get("properties")
    if isinstance(properties, dict):
        if set(properties) - set(schema.get("required") or ()):
            return False
        if not all(strict_compatible(s) for s in properties.values()):
            return False
    for key in ("items", "anyOf", "$defs", "definitions"):
        value = schema.get(key)
        children = value.values() if isinstance(value, dict) and key in ("$defs", "definitions") else [value]
        if not all(strict_compatible(c) for c in children):
            return False
    return True


def json_schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """``text.format`` for a client's response schema: prepared, and strict only when it can be."""
    prepared = prepare_schema(schema)
    return {"type": "json_schema", "name": name, "schema": prepared, "strict": strict_compatible(prepared)}


def effort_for_budget(budget: Any) -> str | None:
    """A thinking-token budget (Anthropic ``budget_tokens``, Gemini ``thinkingBudget``) as a
    reasoning effort, by the thresholds below. ``0`` means "do not think": the lowest effort
    (``none``; callers clamp it to what the model supports). Negative (Gemini's "dynamic") or
    missing: no opinion."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0:
        return None
    if budget == 0:
        return "none"
    if budget < 2000:
        return "low"
    if budget < 8000:
        return "medium"
    if budget < 20000:
        return "high"
    return "xhigh"


def normalize_tool_parameters(schema: Any) -> dict[str, Any]:
    """Function-tool parameter schemas: an object without ``properties`` gains ``properties: {}``."""
    if not isinstance(schema, dict) or not schema:
        return {"type": "object", "properties": {}}
    if schema.get("type") == "object" and "properties" not in schema:
        return {**schema, "properties": {}}
    return schema


def without_reasoning_items(body: dict[str, Any]) -> dict[str, Any] | None:
    """``body`` minus the replayed ``reasoning`` items of its input; None when it has none."""
    items = body.get("input")
    if not isinstance(items, list):
        return None
    kept = [i for i in items if not (isinstance(i, dict) and i.get("type") == "reasoning")]
    return {**body, "input": kept} if len(kept) < len(items) else None


def finalize_body(body: dict[str, Any], *, conversation_id: str, installation_id: str) -> bytes:
    """Serialize a translated request for the backend: fixed stream/store, identity, allow-list."""
    out = {k: v for k, v in body.items() if k in ALLOWED_FIELDS and v is not None}
    out["stream"] = True
    out["store"] = False
    if not isinstance(out.get("instructions"), str):
        out["instructions"] = ""
    out["prompt_cache_key"] = conversation_id
    metadata = {k: v for k, v in (out.get("client_metadata") or {}).items() if isinstance(v, str)}
    metadata.setdefault("x-codex-installation-id", installation_id)
    metadata.setdefault("session_id", conversation_id)
    metadata.setdefault("x-codex-window-id", conversation_id + ":0")
    out["client_metadata"] = metadata
    return orjson.dumps(out)


def compress_body(body: bytes) -> bytes:
    """The body as the CLI sends it to the ChatGPT backend (``content-encoding: zstd``)."""
    return zstd.compress(body, level=3)


def finalize_compact_body(body: dict[str, Any]) -> bytes:
    out = {k: v for k, v in body.items() if k in COMPACT_FIELDS and v is not None}
    if not isinstance(out.get("instructions"), str):
        out["instructions"] = ""
    return orjson.dumps(out)
