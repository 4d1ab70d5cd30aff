"""What a client key is: its format, its stored digest, its limits and budget periods.

A key is ``sk-proxy-<id>_<secret>``: the id (8 hex characters) names the key in the log and the
dashboard and finds its entry without a search; the secret is 256 random bits. Only a BLAKE2b
digest of the whole key is stored. A salt and a slow hash defend guessable passwords; a key this
random cannot be guessed, so one fast hash per request is enough, and the comparison with the
stored digest takes constant time.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

PREFIX = "sk-proxy-"
_ID_HEX = 8
_ID_END = len(PREFIX) + _ID_HEX
UNITS = ("tokens", "usd")
PERIODS = ("day", "month", "total")
MAX_LABEL = 100
MAX_MODELS = 100
_PERSON = b"codex-proxy-key"  # BLAKE2b personalisation: these digests are ours alone


def digest(presented: str) -> bytes:
    return hashlib.blake2b(presented.encode(), digest_size=32, person=_PERSON).digest()


def new_key() -> tuple[str, str]:
    """A fresh (id, key). The key is shown to its owner once and never stored."""
    key_id = secrets.token_hex(_ID_HEX // 2)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(presented: str) -> str | None:
    """The id part of something shaped like one of our keys, else None."""
    if len(presented) > _ID_END + 1 and presented.startswith(PREFIX) and presented[_ID_END] == "_":
        return presented[len(PREFIX):_ID_END]
    return None


def is_client_key(presented: str | None) -> bool:
    return bool(presented) and presented.startswith(PREFIX)  # type: ignore[union-attr]


@functools.lru_cache(maxsize=1024)
def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for a key's allowed models (globs, without case), built once per list."""
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern.lower())})" for pattern in patterns))


def period_start(period: str, now: float) -> float:
    """When the budget period holding ``now`` began: local midnight, the 1st of the month, or never."""
    if period == "total":
        return 0.0
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday if period == "day" else 1, 0, 0, 0, 0, 0, -1))


def period_end(period: str, start: float) -> float | None:
    """When the period that began at ``start`` is over (mktime carries day 32 and month 13 over)."""
    if period == "total":
        return None
    t = time.localtime(start)
    if period == "day":
        return time.mktime((t.tm_year, t.tm_mon, t.tm_mday + 1, 0, 0, 0, 0, 0, -1))
    return time.mktime((t.tm_year, t.tm_mon + 1, 1, 0, 0, 0, 0, 0, -1))


@dataclass(frozen=True, slots=True)
class Budget:
    limit: float  # in ``unit``
    unit: str  # tokens | usd
    period: str  # day | month | total

    def describe(self) -> str:
        amount = f"${self.limit:,.2f}" if self.unit == "usd" else f"{self.limit:,.0f} tokens"
        return {"day": f"daily budget of {amount}", "month": f"monthly budget of {amount}"}.get(self.period, f"budget of {amount}")


@dataclass(frozen=True, slots=True)
class ClientKey:
    id: str
    digest: bytes
    label: str
    created_at: float
    expires_at: float | None = None
    enabled: bool = True
    allowed_models: tuple[str, ...] | None = None  # names or globs; None: every model
    budget: Budget | None = None
    max_concurrency: int | None = None

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(digest(presented), self.digest)

    @property
    def period(self) -> str:
        """The period its counters follow: its budget's, else ``total`` (they never start over)."""
        return self.budget.period if self.budget else "total"

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def allows(self, *models: str) -> bool:
        """Whether any of ``models`` (the name asked for, the model that serves it) is allowed."""
        if self.allowed_models is None:
            return True
        match = _matcher(self.allowed_models).match
        return any(match(name.lower()) for name in models if name)

    def to_row(self) -> dict[str, Any]:
        budget = self.budget
        return {
            "id": self.id, "digest": self.digest.hex(), "label": self.label, "created_at": self.created_at,
            "expires_at": self.expires_at, "enabled": int(self.enabled),
            "allowed_models": None if self.allowed_models is None else orjson.dumps(list(self.allowed_models)).decode(),
            "budget_limit": budget and budget.limit, "budget_unit": budget and budget.unit,
            "budget_period": budget and budget.period, "max_concurrency": self.max_concurrency,
        }  # fmt: skip

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ClientKey:
        models = row.get("allowed_models")
        budget = None
        if row.get("budget_limit") is not None and row.get("budget_unit") in UNITS and row.get("budget_period") in PERIODS:
            budget = Budget(float(row["budget_limit"]), row["budget_unit"], row["budget_period"])
        return cls(
            id=row["id"], digest=bytes.fromhex(row["digest"]), label=row.get("label") or "", created_at=row.get("created_at") or 0.0,
            expires_at=row.get("expires_at"), enabled=bool(row.get("enabled", 1)),
            allowed_models=None if models is None else tuple(orjson.loads(models)), budget=budget,
            max_concurrency=row.get("max_concurrency"),
        )  # fmt: skip

    def public(self) -> dict[str, Any]:
        """What the management API shows: never the key, never its digest."""
        budget = self.budget
        return {
            "id": self.id, "prefix": f"{PREFIX}{self.id}", "label": self.label, "created_at": self.created_at,
            "expires_at": self.expires_at, "enabled": self.enabled,
            "allowed_models": None if self.allowed_models is None else list(self.allowed_models),
            "budget": budget and {"limit": budget.limit, "unit": budget.unit, "period": budget.period},
            "max_concurrency": self.max_concurrency,
        }  # fmt: skip


class KeySpecError(ValueError):
    """A key setting the management API cannot use; the message says which and why."""


def _number(value: Any, what: str, *, whole: bool = False, low: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= low:
        raise KeySpecError(f"{what} must be a {'whole ' if whole else ''}number above {low:g}")
    if whole and value != int(value):
        raise KeySpecError(f"{what} must be a whole number")
    return value


def _budget(value: Any) -> Budget | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not set(value) <= {"limit", "unit", "period"} or "limit" not in value:
        raise KeySpecError('budget must be null or {"limit": number, "unit": "tokens"|"usd", "period": "day"|"month"|"total"}')
    unit, period = value.get("unit", "tokens"), value.get("period", "total")
    if unit not in UNITS:
        raise KeySpecError(f"budget.unit must be one of: {', '.join(UNITS)}")
    if period not in PERIODS:
        raise KeySpecError(f"budget.period must be one of: {', '.join(PERIODS)}")
    return Budget(float(_number(value["limit"], "budget.limit", whole=unit == "tokens")), unit, period)


def _models(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > MAX_MODELS:
        raise KeySpecError(f"allowed_models must be null (every model) or a list of 1-{MAX_MODELS} model names or globs")
    names = tuple(name.strip() for name in value if isinstance(name, str))
    if len(names) != len(value) or not all(0 < len(name) <= 200 for name in names):
        raise KeySpecError("allowed_models must hold model names (or globs such as gpt-5.4*)")
    return names


def _expiry(body: Mapping[str, Any], now: float) -> float | None:
    if body.get("expires_in_days") is not None:
        return now + _number(body["expires_in_days"], "expires_in_days") * 86400
    value = body.get("expires_at")
    return None if value is None else _number(value, "expires_at")


FIELDS = frozenset({"label", "expires_at", "expires_in_days", "enabled", "allowed_models", "budget", "max_concurrency"})


def apply_spec(key: ClientKey, body: Mapping[str, Any], now: float) -> ClientKey:
    """``key`` with the settings ``body`` gives (the others unchanged); KeySpecError if unusable."""
    if unknown := set(body) - FIELDS:
        raise KeySpecError(f"unknown field(s) {', '.join(sorted(unknown))}; give any of: {', '.join(sorted(FIELDS))}")
    changes: dict[str, Any] = {}
    if "label" in body:
        label = body["label"]
        if not isinstance(label, str) or not 0 < len(label.strip()) <= MAX_LABEL:
            raise KeySpecError(f"label must be a text of 1-{MAX_LABEL} characters")
        changes["label"] = label.strip()
    if "expires_at" in body or "expires_in_days" in body:
        changes["expires_at"] = _expiry(body, now)
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise KeySpecError("enabled must be true or false")
        changes["enabled"] = body["enabled"]
    if "allowed_models" in body:
        changes["allowed_models"] = _models(body["allowed_models"])
    if "budget" in body:
        changes["budget"] = _budget(body["budget"])
    if "max_concurrency" in body:
        value = body["max_concurrency"]
        changes["max_concurrency"] = None if value is None else int(_number(value, "max_concurrency", whole=True))
    return replace(key, **changes)
