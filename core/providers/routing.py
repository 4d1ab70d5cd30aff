"""Where a client model name goes: the ChatGPT pool or API-key providers, in failover order.

A ``RoutingTable`` is an immutable snapshot of the providers and routes, rebuilt whenever they
change, so the data plane reads it without a lock. It answers the catalog (core/codex/catalog.py,
``ModelRouter``) and the pipeline:

1. the routes, in their order: the first whose pattern (an exact name or a glob) matches;
2. ``<provider id>/<model>``: that provider, that model;
3. (the catalog's own ids and aliases go to the pool here)
4. a model an enabled provider lists (fetched or manual): the first such provider, by position.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from core.codex.catalog import ModelInfo, RouteClaim
from core.providers.model import POOL, Provider, Route, Target


@dataclass(frozen=True, slots=True)
class Match:
    key: str  # the name that matched
    targets: tuple[Target, ...]  # usable ones only (enabled providers, or the pool)
    rule: str  # "route", "qualified" or "listed"


class RoutingTable:
    def __init__(self, providers: list[Provider], routes: list[Route]) -> None:
        self.providers = {p.id: p for p in providers}
        self.routes = list(routes)
        self._enabled = {p.id for p in providers if p.enabled}
        self._patterns = [(re.compile(fnmatch.translate(r.pattern)) if r.is_glob else None, r) for r in routes]
        self._listed: dict[str, str] = {}
        self._infos: list[ModelInfo] = []
        for provider in sorted((p for p in providers if p.enabled), key=lambda p: p.position):
            details = {m.id: m for m in provider.fetched_models}
            for model_id in provider.model_ids:
                if model_id in self._listed:
                    continue
                self._listed[model_id] = provider.id
                info = details.get(model_id)
                self._infos.append(ModelInfo(
                    id=model_id, display_name=(info.display_name if info else None) or model_id,
                    description=f"{provider.name} ({provider.kind})", context_window=info.context_window if info else None,
                    max_output_tokens=info.max_output_tokens if info else None, source=f"provider:{provider.id}",
                ))  # fmt: skip
        for route in routes:  # an exact route name that reaches a provider is a model clients may pick too
            if not route.is_glob and route.pattern not in self._listed and any(t.provider != POOL for t in self._usable(route.targets)):
                self._infos.append(ModelInfo(id=route.pattern, display_name=route.pattern, description="model route", source="route"))

    def _usable(self, targets: tuple[Target, ...]) -> tuple[Target, ...]:
        return tuple(t for t in targets if t.provider == POOL or t.provider in self._enabled)

    def match(self, name: str, *, listed: bool | None = None) -> Match | None:
        """The route for ``name``. ``listed``: False = routes and qualified names only, True =
        provider model lists only, None = all of them in order."""
        if listed is not True:
            for pattern, route in self._patterns:
                if (route.pattern == name) if pattern is None else bool(pattern.match(name)):
                    targets = self._usable(route.targets)
                    if targets:
                        return Match(name, targets, "route")
            provider_id, slash, model = name.partition("/")
            if slash and model and provider_id in self._enabled:
                return Match(name, (Target(provider_id, model),), "qualified")
        if listed is not False and (provider_id := self._listed.get(name)) is not None:
            return Match(name, (Target(provider_id),), "listed")
        return None

    # --- the catalog's ModelRouter ---------------------------------------------------------------

    def claim(self, name: str, *, listed: bool) -> RouteClaim | None:
        found = self.match(name, listed=listed)
        if found is None:
            return None
        first = found.targets[0]
        pool_model = (first.model or "") if first.provider == POOL else None
        return RouteClaim(found.key, pool_model, any(t.provider != POOL for t in found.targets))

    def models(self) -> list[ModelInfo]:
        return self._infos

    # --- the endpoints that only providers serve ---------------------------------------------------

    def capable(self, name: str, capability: str) -> list[tuple[Provider, str]]:
        """(provider, upstream model) pairs that may serve ``name`` for ``capability``
        (``embeddings`` or ``images``), in failover order; empty when none can."""
        found = self.match(name)
        if found is None:
            return []
        pairs = []
        for target in found.targets:
            provider = self.providers.get(target.provider)
            if provider is not None and getattr(provider, capability):
                pairs.append((provider, target.model or found.key))
        return pairs
