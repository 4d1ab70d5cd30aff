"""Plan routing: which models each ChatGPT plan serves (the backend restricts some to some plans).

Learned two ways: the backend's ``/codex/models`` catalogue, fetched once per plan through an
account on that plan (``auth.plan_routing``), and "model not supported" answers (a plan that
refused a model is not asked for it again). A plan we know nothing about is assumed to serve
everything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

CATALOG_MAX_AGE = 3600.0


class PlanModels:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalogs: dict[str, tuple[frozenset[str], float]] = {}  # plan -> (slugs, fetched at)
        self._refused: set[tuple[str, str]] = set()  # (plan, model) the backend said no to

    def serves(self, plan: str | None, model: str) -> bool:
        """False only when we know better: the plan refused the model, or its catalogue lacks a
        model another plan's catalogue lists. A model no catalogue lists (hidden, newer than our
        client version, custom) is left to the backend to judge."""
        if not plan:
            return True
        with self._lock:
            if (plan, model) in self._refused:
                return False
            catalog = self._catalogs.get(plan)
            listed_somewhere = any(model in models for models, _ in self._catalogs.values())
        return catalog is None or model in catalog[0] or not listed_somewhere

    def record_catalog(self, plan: str, slugs: Iterable[str], now: float | None = None) -> None:
        models = frozenset(slugs)
        with self._lock:
            self._catalogs[plan] = (models, time.time() if now is None else now)
            self._refused = {(p, m) for p, m in self._refused if p != plan or m not in models}

    def learn_refused(self, plan: str | None, model: str) -> None:
        if plan:
            with self._lock:
                self._refused.add((plan, model))

    def stale(self, plans: Iterable[str | None], now: float | None = None, max_age: float = CATALOG_MAX_AGE) -> set[str]:
        """The plans among ``plans`` whose catalogue is missing or older than ``max_age``."""
        now = time.time() if now is None else now
        with self._lock:
            return {p for p in plans if p and (p not in self._catalogs or now - self._catalogs[p][1] > max_age)}

    def expire(self) -> None:
        """Every catalogue is due again (the client version changed: the backend may list more)."""
        with self._lock:
            self._catalogs = {plan: (models, 0.0) for plan, (models, _) in self._catalogs.items()}

    def snapshot(self) -> dict[str, list[str]]:
        with self._lock:
            return {plan: sorted(models) for plan, (models, _) in self._catalogs.items()}
