"""API-key providers, their keys and the model routes, as plain values.

A provider is one account at an API vendor (or any OpenAI-compatible server): its kind, the base URL,
the wire it speaks (the request and stream format), its keys and its models (fetched from the
provider and cached, plus manual entries). A route sends a client model name (exact, or a glob) to
an ordered list of targets, each the ChatGPT pool or a provider; later targets are the failover.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

KINDS = ("openai", "anthropic", "gemini", "openrouter", "custom")
WIRES = ("chat", "responses", "anthropic", "gemini")
POOL = "chatgpt"  # the route target that means the ChatGPT account pool

DEFAULT_BASE_URL = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "openrouter": "https://openrouter.ai/api/v1",
}
KIND_WIRES = {  # the first is the default
    "openai": ("responses", "chat"),
    "anthropic": ("anthropic",),
    "gemini": ("gemini",),
    "openrouter": ("chat",),
    "custom": ("chat", "responses", "anthropic", "gemini"),
}
# What besides turns a provider's API has (embeddings and images through the OpenAI shapes).
EMBEDDING_WIRES = frozenset({"chat", "responses", "gemini"})
IMAGE_KINDS = frozenset({"openai", "custom"})

KEY_STATUSES = ("active", "disabled", "invalid")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,47}$")


_RESERVED = frozenset({POOL, "export", "import"})  # a pool target, or management API paths


def valid_id(value: str) -> bool:
    return bool(_ID.match(value)) and value not in _RESERVED


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def mask_key(key: str) -> str:
    """Enough of a key to tell two apart, never enough to use one."""
    if len(key) < 16:
        return "•" * 8
    head = key[:6] if key.startswith(("sk-", "sk_")) else key[:3]
    return f"{head}…{key[-4:]}"


@dataclass(slots=True)
class ProviderKey:
    id: str
    provider_id: str
    key: str
    label: str | None = None
    status: str = "active"  # active | disabled (by hand) | invalid (the provider refused it: 401/403)
    cooldown_until: float | None = None  # rate limited until then
    last_error: str | None = None
    last_used_at: float | None = None
    requests: int = 0
    failures: int = 0
    added_at: float = 0.0

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "masked": mask_key(self.key), "status": self.status,
                "cooldown_until": self.cooldown_until, "last_error": self.last_error, "last_used_at": self.last_used_at,
                "requests": self.requests, "failures": self.failures, "added_at": self.added_at}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProviderModel:
    """One model a provider lists (or a manual entry)."""

    id: str
    display_name: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    embeddings: bool = False  # an embedding model (Gemini says so; OpenAI-shaped lists do not)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("id", self.id), ("display_name", self.display_name), ("context_window", self.context_window),
                                  ("max_output_tokens", self.max_output_tokens), ("embeddings", self.embeddings or None)) if v}

    @classmethod
    def from_dict(cls, raw: Any) -> ProviderModel | None:
        if isinstance(raw, str) and raw:
            return cls(raw)
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            return None
        ints = {k: raw.get(k) if isinstance(raw.get(k), int) else None for k in ("context_window", "max_output_tokens")}
        return cls(raw["id"], raw.get("display_name") if isinstance(raw.get("display_name"), str) else None,
                   embeddings=raw.get("embeddings") is True, **ints)  # fmt: skip


@dataclass(slots=True)
class Provider:
    id: str
    kind: str
    name: str
    base_url: str
    wire: str
    enabled: bool = True
    headers: dict[str, str] = field(default_factory=dict)  # sent with every call (e.g. OpenRouter's X-Title)
    manual_models: list[str] = field(default_factory=list)
    fetched_models: list[ProviderModel] = field(default_factory=list)
    models_fetched_at: float | None = None
    models_error: str | None = None
    position: int = 0
    created_at: float = 0.0
    keys: list[ProviderKey] = field(default_factory=list)

    @property
    def model_ids(self) -> list[str]:
        """Fetched then manual, each once."""
        seen: dict[str, None] = {m.id: None for m in self.fetched_models}
        seen.update({m: None for m in self.manual_models})
        return list(seen)

    @property
    def embeddings(self) -> bool:
        return self.wire in EMBEDDING_WIRES and self.kind != "anthropic"

    @property
    def images(self) -> bool:
        return self.kind in IMAGE_KINDS and self.wire in ("chat", "responses")

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "name": self.name, "base_url": self.base_url, "wire": self.wire,
            "enabled": self.enabled, "headers": dict(self.headers), "models": list(self.manual_models),
            "fetched_models": [m.as_dict() for m in self.fetched_models], "models_fetched_at": self.models_fetched_at,
            "models_error": self.models_error, "position": self.position, "created_at": self.created_at,
            "capabilities": {"embeddings": self.embeddings, "images": self.images},
            "keys": [k.public() for k in self.keys],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Target:
    provider: str  # a provider id, or POOL
    model: str | None = None  # the model name there; None: the name the client asked for

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model} if self.model else {"provider": self.provider}


@dataclass(frozen=True, slots=True)
class Route:
    pattern: str  # an exact name, or a glob (* ? [..]) over client model names
    targets: tuple[Target, ...]

    @property
    def is_glob(self) -> bool:
        return any(c in self.pattern for c in "*?[")

    def as_dict(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "targets": [t.as_dict() for t in self.targets]}
