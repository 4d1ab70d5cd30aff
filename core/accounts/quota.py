"""Quota: the backend's rate-limit windows, read from the ``x-codex-*`` headers of every response
and from ``/wham/usage`` bodies, and the pool-wide view of them.

Which window is the 5-hour one and which the weekly one is told by its length, never by the
words "primary"/"secondary" (backend builds disagree on which is which). A window whose reset time has passed counts
as empty. Everything here is pure: no I/O, no clock but the ``now`` passed in.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

CODEX_LIMIT = "codex"
SHORT_WINDOW_MINUTES = 300  # what a window of unknown length is assumed to be, and the default short one
LONG_WINDOW_MINUTES = 10080
_DAY_MINUTES = 1440

# x-<limit>-<primary|secondary>-<field>; the limit is "codex" or e.g. "codex-bengalfox" (id codex_bengalfox).
_WINDOW_HEADER = re.compile(
    r"^x-(?P<limit>codex(?:-[a-z0-9-]+?)?)-(?P<slot>primary|secondary)-"
    r"(?P<field>used-percent|window-minutes|reset-at|reset-after-seconds)$"
)
# The plan names the official client can deserialize in a usage body (codex-rs openapi PlanType).
CLIENT_PLAN_TYPES = ("pro", "enterprise", "business", "team", "edu", "education", "quorum", "plus", "go",
                     "free_workspace", "k12", "free", "guest")  # fmt: skip
_PLAN_ALIASES = {"prolite": "pro", "edu_pro": "edu", "edu_plus": "edu", "self_serve_business_prolite": "business",
                 "self_serve_business_usage_based": "business", "enterprise_cbp_automation": "enterprise",
                 "enterprise_cbp_usage_based": "enterprise", "finserv": "enterprise", "hc": "enterprise",
                 "sci": "enterprise"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Window:
    used_percent: float
    window_minutes: int | None = None
    reset_at: float | None = None  # unix seconds

    @property
    def minutes(self) -> int:
        return self.window_minutes or SHORT_WINDOW_MINUTES

    @property
    def is_long(self) -> bool:
        return self.minutes > _DAY_MINUTES

    def used(self, now: float) -> float:
        """Usage as of ``now``: a window whose reset time has passed starts over at zero."""
        if self.reset_at is not None and self.reset_at <= now:
            return 0.0
        return max(0.0, self.used_percent)

    def exhausted(self, now: float) -> bool:
        return self.used(now) >= 100.0

    def to_dict(self) -> dict[str, Any]:
        return {"used_percent": self.used_percent, "window_minutes": self.window_minutes, "reset_at": self.reset_at}

    @classmethod
    def from_dict(cls, data: Any) -> Window | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("used_percent"), (int, float)):
            return None
        return cls(float(data["used_percent"]), _int(data.get("window_minutes")), _float(data.get("reset_at")))


@dataclass(frozen=True, slots=True)
class Quota:
    """One account's rate-limit state as last observed."""

    observed_at: float
    primary: Window | None = None
    secondary: Window | None = None
    credits: dict[str, Any] | None = None  # {"has_credits", "unlimited", "balance"}
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # other metered limits, by id
    plan_type: str | None = None

    def windows(self) -> list[Window]:
        return [w for w in (self.primary, self.secondary) if w is not None]

    def short(self) -> Window | None:
        return next((w for w in self.windows() if not w.is_long), None)

    def long(self) -> Window | None:
        return next((w for w in self.windows() if w.is_long), None)

    def exhausted_until(self, now: float) -> float | None:
        """When the account can serve again if a ``codex`` window is used up (account-wide, every
        model), else None. A used-up window with no known reset gives ``now`` (caller backs off)."""
        full = [w for w in self.windows() if w.exhausted(now)]
        if not full:
            return None
        return max(w.reset_at or now for w in full)

    def used(self, now: float) -> float:
        """The binding (highest) usage of the ``codex`` windows."""
        return max((w.used(now) for w in self.windows()), default=0.0)

    def same_usage(self, other: Quota) -> bool:
        """Nothing worth saving changed (the observation time aside)."""
        return (self.primary, self.secondary, self.credits, self.extra, self.plan_type) == (
            other.primary, other.secondary, other.credits, other.extra, other.plan_type)  # fmt: skip

    def merged(self, newer: Quota) -> Quota:
        """A header snapshot lacks what /wham/usage told us (plan, extra limits): keep those."""
        return Quota(
            observed_at=newer.observed_at,
            primary=newer.primary or self.primary,
            secondary=newer.secondary or self.secondary,
            credits=newer.credits or self.credits,
            extra={**self.extra, **newer.extra},
            plan_type=newer.plan_type or self.plan_type,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "observed_at": self.observed_at,
            "primary": self.primary.to_dict() if self.primary else None,
            "secondary": self.secondary.to_dict() if self.secondary else None,
            "credits": self.credits,
            "extra": {
                limit: {k: (v.to_dict() if isinstance(v, Window) else v) for k, v in entry.items()}
                for limit, entry in self.extra.items()
            },
            "plan_type": self.plan_type,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Quota | None:
        if not isinstance(data, Mapping):
            return None
        extra = {
            str(limit): {k: (Window.from_dict(v) if k in ("primary", "secondary") else v) for k, v in entry.items()}
            for limit, entry in (data.get("extra") or {}).items()
            if isinstance(entry, Mapping)
        }
        return cls(
            observed_at=float(data.get("observed_at") or 0),
            primary=Window.from_dict(data.get("primary")),
            secondary=Window.from_dict(data.get("secondary")),
            credits=data.get("credits") if isinstance(data.get("credits"), dict) else None,
            extra=extra,
            plan_type=data.get("plan_type"),
        )


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result and result not in (float("inf"), float("-inf")) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    return None


def _window(fields: Mapping[str, str], now: float) -> Window | None:
    used = _float(fields.get("used-percent"))
    if used is None:
        return None
    reset_at = _float(fields.get("reset-at"))
    if reset_at is None and (after := _float(fields.get("reset-after-seconds"))) is not None:
        reset_at = now + after  # the older, relative spelling
    return Window(used, _int(fields.get("window-minutes")), reset_at)


@functools.lru_cache(maxsize=512)
def _window_header(name: str) -> tuple[str, str, str] | None:
    """(limit, slot, field) of a rate-limit window header; the same few names come on every answer."""
    match = _WINDOW_HEADER.match(name.lower())
    return (match["limit"].replace("-", "_"), match["slot"], match["field"]) if match else None


def parse_headers(headers: Mapping[str, str], now: float) -> Quota | None:
    """The rate-limit headers of one response (lower-case names), or None when it carried none."""
    groups: dict[str, dict[str, dict[str, str]]] = {}
    for name, value in headers.items():
        if not name.startswith(("x-", "X-")):
            continue  # most of an answer's headers; the pattern below is the dear part
        if parts := _window_header(name):
            limit, slot, field = parts
            groups.setdefault(limit, {}).setdefault(slot, {})[field] = value
    has = _bool(headers.get("x-codex-credits-has-credits"))
    unlimited = _bool(headers.get("x-codex-credits-unlimited"))
    credits = None
    if has is not None and unlimited is not None:
        credits = {"has_credits": has, "unlimited": unlimited, "balance": headers.get("x-codex-credits-balance")}
    main = groups.pop(CODEX_LIMIT, {})
    extra = {}
    for limit, slots in groups.items():
        entry: dict[str, Any] = {slot: _window(fields, now) for slot, fields in slots.items()}
        if name := headers.get(f"x-{limit.replace('_', '-')}-limit-name"):
            entry["name"] = name
        if any(isinstance(v, Window) for v in entry.values()):
            extra[limit] = entry
    primary, secondary = _window(main.get("primary", {}), now), _window(main.get("secondary", {}), now)
    if primary is None and secondary is None and credits is None and not extra:
        return None
    return Quota(now, primary, secondary, credits, extra)


_REVIEW_LIMITS = frozenset({"review", "code_review", "codex_review", "codex_code_review"})


def event_headers(event: Mapping[str, Any]) -> dict[str, str]:
    """A WebSocket ``codex.rate_limits`` event as the ``x-codex-*`` headers an HTTP answer carries
    with the same news: one parser for both, and what a client is shown either way. Windows of a
    code-review limit are not the account's turn quota and are left out."""
    headers: dict[str, str] = {}
    limit = str(event.get("metered_limit_name") or event.get("limit_name") or CODEX_LIMIT)
    windows = event.get("rate_limits")
    if isinstance(windows, Mapping) and limit not in _REVIEW_LIMITS:
        prefix = "x-" + limit.replace("_", "-")
        for slot in ("primary", "secondary"):
            window = windows.get(slot)
            used = _float(window.get("used_percent")) if isinstance(window, Mapping) else None
            if used is None:
                continue
            headers[f"{prefix}-{slot}-used-percent"] = str(used)
            if (minutes := _int(window.get("window_minutes"))) is not None:
                headers[f"{prefix}-{slot}-window-minutes"] = str(minutes)
            if (reset_at := _int(window.get("reset_at"))) is not None:
                headers[f"{prefix}-{slot}-reset-at"] = str(reset_at)
    credits = event.get("credits")
    if isinstance(credits, Mapping) and isinstance(credits.get("has_credits"), bool) and isinstance(credits.get("unlimited"), bool):
        headers["x-codex-credits-has-credits"] = "true" if credits["has_credits"] else "false"
        headers["x-codex-credits-unlimited"] = "true" if credits["unlimited"] else "false"
        if credits.get("balance") is not None:
            headers["x-codex-credits-balance"] = str(credits["balance"])
    return headers


def parse_rate_limit_event(event: Mapping[str, Any], now: float) -> Quota | None:
    """A ``codex.rate_limits`` event, or None when it says nothing about the account's quota."""
    quota = parse_headers(event_headers(event), now)
    plan = event.get("plan_type")
    if quota is not None and isinstance(plan, str) and plan:
        quota = dataclasses.replace(quota, plan_type=plan)
    return quota


def _body_window(data: Any, now: float) -> Window | None:
    if not isinstance(data, Mapping) or _float(data.get("used_percent")) is None:
        return None
    seconds = _float(data.get("limit_window_seconds"))
    reset_at = _float(data.get("reset_at"))
    if reset_at is None and (after := _float(data.get("reset_after_seconds"))) is not None:
        reset_at = now + after
    return Window(float(data["used_percent"]), round(seconds / 60) if seconds else None, reset_at)


def parse_usage_body(body: Any, now: float) -> Quota | None:
    """A ``/wham/usage`` answer; None when it has no ``rate_limit`` (not a usage body)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("rate_limit"), Mapping):
        return None
    limits = body["rate_limit"]
    extra = {}
    for item in body.get("additional_rate_limits") or []:
        if isinstance(item, Mapping) and isinstance(item.get("rate_limit"), Mapping):
            limit = str(item.get("metered_feature") or item.get("limit_name") or "other")
            extra[limit] = {
                "name": item.get("limit_name"),
                "primary": _body_window(item["rate_limit"].get("primary_window"), now),
                "secondary": _body_window(item["rate_limit"].get("secondary_window"), now),
            }
    raw_credits = body.get("credits")
    credits = None
    if isinstance(raw_credits, Mapping):
        credits = {k: raw_credits.get(k) for k in ("has_credits", "unlimited", "balance")}
    return Quota(
        observed_at=now,
        primary=_body_window(limits.get("primary_window"), now),
        secondary=_body_window(limits.get("secondary_window"), now),
        credits=credits,
        extra=extra,
        plan_type=body.get("plan_type") if isinstance(body.get("plan_type"), str) else None,
    )


# --- warnings --------------------------------------------------------------------------------------


def crossed(used: float, thresholds: Iterable[float]) -> float | None:
    """The highest threshold ``used`` has reached, if any."""
    reached = [float(t) for t in thresholds if used >= float(t)]
    return max(reached) if reached else None


def thresholds_for(setting: Any, window: str) -> list[float]:
    """``quota.warning_thresholds``: one list for both windows, or one list per window as
    ``{"primary": [...], "secondary": [...]}``."""
    if isinstance(setting, Mapping):
        setting = setting.get(window)
    return [float(t) for t in setting or [] if isinstance(t, (int, float))]


def warnings_for(quota: Quota | None, setting: Any, now: float) -> list[dict[str, Any]]:
    """One entry per window at or above a threshold; the top threshold counts as critical."""
    if quota is None:
        return []
    out = []
    for name, window in (("primary", quota.primary), ("secondary", quota.secondary)):
        thresholds = thresholds_for(setting, name)
        if window is None or not thresholds:
            continue
        used = window.used(now)
        threshold = crossed(used, thresholds)
        if threshold is None:
            continue
        top = max(thresholds)
        out.append({
            "window": name,
            "window_minutes": window.minutes,
            "used_percent": round(used, 1),
            "threshold": threshold,
            "level": "critical" if threshold >= top or used >= 100 else "warning",
            "resets_at": window.reset_at,
        })
    return out


# --- the pool-wide view ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """One account that could serve, as the pooled view sees it."""

    quota: Quota | None
    blocked_until: float | None = None  # rate-limited (429) until then, even if its headers disagree
    plan: str | None = None


def _usage_pair(window: Window | None, now: float) -> tuple[float, float | None]:
    return (window.used(now), window.reset_at) if window else (0.0, None)


def pooled(members: list[Member], now: float) -> dict[str, Any]:
    """The pool seen as one account. Per window: the mean usage over the accounts that can serve,
    so it reads 100% only when every one of them is used up, and the earliest reset among the
    accounts that have used some of it. When none can serve, the short window reads 100% and
    resets when the first account comes back."""
    used: dict[str, list[float]] = {"short": [], "long": []}
    resets: dict[str, list[float]] = {"short": [], "long": []}
    minutes = {"short": SHORT_WINDOW_MINUTES, "long": LONG_WINDOW_MINUTES}
    free_at: list[float] = []
    for member in members:
        quota = member.quota
        windows = {"short": quota.short() if quota else None, "long": quota.long() if quota else None}
        pairs = {slot: _usage_pair(window, now) for slot, window in windows.items()}
        if member.blocked_until and member.blocked_until > now and all(u < 100 for u, _ in pairs.values()):
            pairs["short"] = (100.0, member.blocked_until)  # a 429 the headers did not show
        for slot, (u, reset_at) in pairs.items():
            used[slot].append(u)
            if reset_at and u > 0:
                resets[slot].append(reset_at)
            if windows[slot] is not None and windows[slot].window_minutes:
                minutes[slot] = windows[slot].window_minutes
        full = [reset_at or now for u, reset_at in pairs.values() if u >= 100]
        if full:
            free_at.append(max(full))
    exhausted = bool(members) and len(free_at) == len(members)
    view: dict[str, Any] = {"members": len(members), "available": len(members) - len(free_at), "limit_reached": exhausted}
    for slot in ("short", "long"):
        mean = sum(used[slot]) / len(used[slot]) if used[slot] else 0.0
        view[slot] = {
            "used_percent": min(mean, 100.0) if exhausted else min(mean, 99.0),
            "window_minutes": minutes[slot],
            "reset_at": min(resets[slot]) if resets[slot] else now + minutes[slot] * 60,
        }
    if exhausted:
        view["short"].update(used_percent=100.0, reset_at=min(free_at))
    view["credits"] = _pooled_credits(members)
    view["plan_type"] = client_plan_type(m.plan for m in members)
    return view


def _pooled_credits(members: list[Member]) -> dict[str, Any]:
    has = unlimited = False
    balance = Decimal(0)
    for member in members:
        credits = member.quota.credits if member.quota else None
        if not credits:
            continue
        has = has or bool(credits.get("has_credits"))
        unlimited = unlimited or bool(credits.get("unlimited"))
        try:
            balance += Decimal(str(credits.get("balance") or 0))
        except InvalidOperation:
            pass
    return {"has_credits": has, "unlimited": unlimited, "balance": format(balance.normalize(), "f")}


def client_plan_type(plans: Iterable[str | None]) -> str:
    """The best plan among ``plans``, named as the official client's PlanType enum knows it."""
    ranked = {name: rank for rank, name in enumerate(CLIENT_PLAN_TYPES)}
    known = [_PLAN_ALIASES.get(p, p) for p in plans if p]
    known = [p for p in known if p in ranked]
    return min(known, key=ranked.__getitem__) if known else "plus"


def usage_body(view: dict[str, Any], now: float) -> dict[str, Any]:
    """``pooled()`` shaped as the backend's ``/wham/usage`` body. The official client deserializes
    the window fields as 32-bit integers and ``plan_type`` as a closed enum, so both are kept so."""

    def window(slot: dict[str, Any]) -> dict[str, int]:
        reset_at = int(slot["reset_at"])
        return {
            "used_percent": int(round(slot["used_percent"])),  # pooled() keeps it below 99.5 unless exhausted
            "limit_window_seconds": int(slot["window_minutes"]) * 60,
            "reset_after_seconds": max(0, reset_at - int(now)),
            "reset_at": reset_at,
        }

    short, long = window(view["short"]), window(view["long"])
    return {
        "plan_type": view["plan_type"],
        "rate_limit": {
            "allowed": not view["limit_reached"],
            "limit_reached": view["limit_reached"],
            "primary_window": short,
            "secondary_window": long,
        },
        "code_review_rate_limit": None,
        "additional_rate_limits": [],
        "credits": {**view["credits"], "approx_local_messages": [0, 0], "approx_cloud_messages": [0, 0]},
        "rate_limit_reached_type": "primary" if view["limit_reached"] else None,
        "promo": None,
        "codex_proxy": {"pooled": True, "accounts": view["members"], "available": view["available"]},
    }


def usage_headers(view: dict[str, Any]) -> dict[str, str]:
    """``pooled()`` as the ``x-codex-*`` response headers (what clients read after every turn)."""
    headers: dict[str, str] = {}
    for slot, name in (("short", "primary"), ("long", "secondary")):
        window = view[slot]
        headers[f"x-codex-{name}-used-percent"] = f"{window['used_percent']:.1f}"
        headers[f"x-codex-{name}-window-minutes"] = str(int(window["window_minutes"]))
        headers[f"x-codex-{name}-reset-at"] = str(int(window["reset_at"]))
    credits = view["credits"]
    headers["x-codex-credits-has-credits"] = "true" if credits["has_credits"] else "false"
    headers["x-codex-credits-unlimited"] = "true" if credits["unlimited"] else "false"
    headers["x-codex-credits-balance"] = str(credits["balance"])
    return headers


def rate_limits_event(view: dict[str, Any]) -> dict[str, Any]:
    """``pooled()`` as the ``codex.rate_limits`` event the backend sends on a WebSocket before
    each turn (what Codex CLI shows in ``/status`` when it talks WebSocket)."""

    def window(slot: dict[str, Any]) -> dict[str, Any]:
        return {"used_percent": round(slot["used_percent"], 1), "window_minutes": int(slot["window_minutes"]),
                "reset_at": int(slot["reset_at"])}

    return {
        "type": "codex.rate_limits",
        "plan_type": view["plan_type"],
        "rate_limits": {"allowed": not view["limit_reached"], "limit_reached": view["limit_reached"],
                        "primary": window(view["short"]), "secondary": window(view["long"])},
        "credits": dict(view["credits"]),
    }
