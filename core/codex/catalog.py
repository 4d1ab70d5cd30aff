"""The model catalog and client model-name resolution (aliases, ``-high``/``-fast`` suffixes)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.config import shipped_yaml
from core.settings import Settings

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max", "ultra")
TIERS = ("fast", "flex")
# Unknown names that look like OpenAI/Codex models (gpt-…, o1…, codex-…) are served by the default
# model rather than refused, so a client configured with an older model name keeps working.
_CODEX_LIKE = re.compile(r"^(gpt|o\d|codex)", re.IGNORECASE)
_ALIAS_HOPS = 20


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    display_name: str
    description: str = ""
    efforts: tuple[str, ...] = ()
    default_effort: str | None = None
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("text",)
    context_window: int | None = None
    max_context_window: int | None = None
    max_output_tokens: int | None = None
    service_tiers: tuple[str, ...] = ()
    prefer_websockets: bool = False  # the backend's catalogue asks clients to use its WebSocket
    source: str = "static"

    @classmethod
    def from_config(cls, raw: str | Mapping[str, Any], source: str) -> ModelInfo:
        if isinstance(raw, str):
            return cls(id=raw, display_name=raw, efforts=("medium",), default_effort="medium", source=source)
        efforts = raw.get("efforts") or raw.get("supported_reasoning_efforts") or ()
        return cls(
            id=str(raw["id"]),
            display_name=str(raw.get("display_name") or raw["id"]),
            description=str(raw.get("description") or ""),
            efforts=tuple(efforts),
            default_effort=raw.get("default_effort") or raw.get("default_reasoning_effort"),
            input_modalities=tuple(raw.get("input_modalities") or ("text",)),
            output_modalities=tuple(raw.get("output_modalities") or ("text",)),
            context_window=raw.get("context_window"),
            max_context_window=raw.get("max_context_window"),
            max_output_tokens=raw.get("max_output_tokens"),
            service_tiers=tuple(raw.get("service_tiers") or ()),
            prefer_websockets=raw.get("prefer_websockets") is True,
            source=source,
        )


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """What a client model name means upstream."""

    id: str  # the Codex model id sent upstream
    requested: str
    effort: str | None = None  # from a name suffix
    tier: str | None = None  # from a name suffix ("fast" is sent as "priority")
    known: bool = True  # False when an unknown name fell back to the default model
    prefer_websockets: bool = False  # the static catalogue's word on the transport
    route: str | None = None  # the name a model route matched when API-key providers may serve it

    @property
    def display(self) -> str:
        """The model name echoed back to clients, e.g. ``gpt-5.4-high-fast``."""
        return self.id + (f"-{self.effort}" if self.effort else "") + (f"-{self.tier}" if self.tier else "")

    @property
    def admissible(self) -> bool:
        """Chat Completions serves unknown names only if they look like OpenAI/Codex models."""
        return self.known or bool(_CODEX_LIKE.match(self.requested))


@dataclass(frozen=True, slots=True)
class RouteClaim:
    """A model route (or an API-key provider's model list) that takes a client model name."""

    key: str  # the name the route matched: what the pipeline asks the router about
    pool_model: str | None  # the first target is the ChatGPT pool: the name to serve there; None: a provider
    providers: bool  # some target is an API-key provider (else the route only renames within the pool)


class ModelRouter(Protocol):
    """Model routes and API-key providers, as the catalog consults them (core/providers/routing.py).
    ``listed=False``: explicit routes and ``provider/model`` names only; ``True``: provider model lists."""

    def claim(self, name: str, *, listed: bool) -> RouteClaim | None: ...

    def models(self) -> list[ModelInfo]: ...


@dataclass(slots=True)
class ModelCatalog:
    default: str  # the model served when a request names none (model.default)
    models: dict[str, ModelInfo] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    alias_prefixes: list[tuple[str, str]] = field(default_factory=list)
    router: ModelRouter | None = None

    @classmethod
    def from_config(cls, cfg: Settings, router: ModelRouter | None = None) -> ModelCatalog:
        static, _ = shipped_yaml("models.yaml")
        models = {m.id: m for m in (ModelInfo.from_config(raw, "static") for raw in static.get("models") or [])}
        for raw in cfg.model.custom_models:
            info = ModelInfo.from_config(raw, "custom")
            models[info.id] = info
        aliases = {str(k): str(v) for k, v in (static.get("aliases") or {}).items()}
        aliases.update(cfg.model.aliases)
        prefixes = [(str(k), str(v)) for k, v in (static.get("alias_prefixes") or {}).items()]
        return cls(default=cfg.model.default, models=models, aliases=aliases, alias_prefixes=prefixes, router=router)

    def get(self, model_id: str) -> ModelInfo | None:
        info = self.models.get(model_id)
        if info is None and self.router is not None:
            info = next((m for m in self.router.models() if m.id == model_id), None)
        return info

    def list(self) -> list[ModelInfo]:
        """The ChatGPT pool's models."""
        return list(self.models.values())

    def listing(self) -> list[ModelInfo]:
        """Every model a client may name: the pool's, then the API-key providers' (first one wins a name)."""
        listed = self.list()
        if self.router is not None:
            seen = set(self.models)
            for info in self.router.models():
                if info.id not in seen:
                    seen.add(info.id)
                    listed.append(info)
        return listed

    def resolve(self, name: str | None) -> ResolvedModel:
        """A client's model name: explicit model routes first, then the pool's ids and aliases, then
        the providers' model lists, then the pool's name families and its default model."""
        resolved = self._resolve(name)
        info = self.models.get(resolved.id)
        return dataclasses.replace(resolved, prefer_websockets=True) if info is not None and info.prefer_websockets else resolved

    def _resolve(self, name: str | None) -> ResolvedModel:
        requested = (name or "").strip()
        if not requested:
            return ResolvedModel(id=self._follow_aliases(self.default) or self.default, requested=self.default)
        base, tier = _strip_suffix(requested, TIERS)
        base, effort = _strip_suffix(base, EFFORTS)
        if (claimed := self._claimed(requested, base, listed=False, effort=effort, tier=tier)) is not None:
            return claimed
        direct = self._lookup(requested, prefixes=False)  # family prefixes only after suffixes are split off
        if direct:
            return ResolvedModel(id=direct, requested=requested)
        resolved = self._lookup(base, prefixes=False)
        if resolved:
            return ResolvedModel(id=resolved, requested=requested, effort=effort, tier=tier)
        if (claimed := self._claimed(requested, base, listed=True, effort=effort, tier=tier)) is not None:
            return claimed
        return self._pool(requested, base, effort, tier)

    def pool_model(self, name: str) -> str:
        """The pool model that serves ``name`` (a route's pool target), ignoring routes."""
        return self._pool(name, name, None, None).id

    def _pool(self, requested: str, base: str, effort: str | None, tier: str | None) -> ResolvedModel:
        resolved = self._lookup(base)
        if resolved:
            return ResolvedModel(id=resolved, requested=requested, effort=effort, tier=tier)
        fallback = self._follow_aliases(self.default) or self.default
        return ResolvedModel(id=fallback, requested=requested, effort=effort, tier=tier, known=False)

    def _claimed(self, requested: str, base: str, *, listed: bool, effort: str | None, tier: str | None) -> ResolvedModel | None:
        """``requested`` (whole, then without its suffixes) as a route or a provider model takes it."""
        if self.router is None:
            return None
        names = [(requested, None, None)] + ([(base, effort, tier)] if base != requested else [])
        for name, name_effort, name_tier in names:
            claim = self.router.claim(name, listed=listed)
            if claim is None:
                continue
            route = claim.key if claim.providers else None
            model_id = claim.key if claim.pool_model is None else self.pool_model(claim.pool_model or name)
            return ResolvedModel(id=model_id, requested=requested, effort=name_effort, tier=name_tier, route=route)
        return None

    def supported_effort(self, model_id: str, effort: str | None) -> str | None:
        """``effort`` moved to the nearest level ``model_id`` supports (ties go up), for efforts
        the proxy derives itself (thinking budgets, Ollama's ``think``) rather than ones a client
        named explicitly. Unknown models and unknown efforts pass unchanged."""
        info = self.models.get(model_id)
        if effort is None or info is None or not info.efforts or effort in info.efforts or effort not in EFFORTS:
            return effort
        rank = EFFORTS.index(effort)
        levels = [e for e in info.efforts if e in EFFORTS]
        if not levels:
            return effort
        return min(levels, key=lambda e: (abs(EFFORTS.index(e) - rank), -EFFORTS.index(e)))

    def _lookup(self, name: str, prefixes: bool = True) -> str | None:
        """Catalog id or alias target for ``name``; None when it means nothing to us."""
        if name in self.aliases:
            return self._follow_aliases(name)
        if name in self.models:
            return name
        if not prefixes:
            return None
        lowered = name.lower()
        for prefix, target in self.alias_prefixes:
            if lowered.startswith(prefix):
                return self._follow_aliases(target) or target
        return None

    def _follow_aliases(self, name: str) -> str | None:
        seen: set[str] = set()
        current = name
        for _ in range(_ALIAS_HOPS):
            target = self.aliases.get(current)
            if target is None or target in seen:
                break
            seen.add(current)
            current = target
        return current

    def openai_entry(self, info: ModelInfo) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": info.id, "object": "model", "created": 1700000000, "owned_by": "openai"}
        for key in ("context_window", "max_context_window", "max_output_tokens"):
            value = getattr(info, key)
            if value is not None:
                entry[key] = value
        return entry

    def catalog_entry(self, info: ModelInfo) -> dict[str, Any]:
        return {
            "id": info.id,
            "displayName": info.display_name,
            "description": info.description,
            "isDefault": info.id == (self._follow_aliases(self.default) or self.default),
            "supportedReasoningEfforts": [{"reasoningEffort": e, "description": e} for e in info.efforts],
            "defaultReasoningEffort": info.default_effort,
            "inputModalities": list(info.input_modalities),
            "outputModalities": list(info.output_modalities),
            "contextWindow": info.context_window,
            "maxContextWindow": info.max_context_window,
            "maxOutputTokens": info.max_output_tokens,
            "serviceTiers": list(info.service_tiers),
            "source": info.source,
        }


def _strip_suffix(name: str, suffixes: tuple[str, ...]) -> tuple[str, str | None]:
    for suffix in suffixes:
        if name.endswith("-" + suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix) - 1], suffix
    return name, None
