"""Mutable state of one fake: knobs, scripts, faults, recorded requests, usage and counters.

Kept apart from the HTTP layer so the control operations (Python methods and the ``/__fake``
routes) are plain synchronous calls on one object, always made on the fake's event loop.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codex_fake.faults import check_scenario

RESPONSE_FAULT_KEYS = frozenset(
    {"http_error", "fail", "disconnect_after", "error_event", "json_body", "empty", "incomplete"}
)


@dataclass(slots=True)
class FakeConfig:
    """Every ``configure()`` knob with its default (reset() returns to the constructor's values)."""

    ttfb_ms: float = 0  # before the response headers and the first event
    ttft_ms: float = 0  # after response.created/in_progress, before the first output event
    events: int | None = None  # benchmark: the default answer is exactly N text deltas of 8 chars
    event_delay_ms: float = 0  # between consecutive events
    stamp_events: bool = False  # benchmark: each text delta is the send time (time.monotonic_ns, 20 digits)
    token_delay_ms: float = 0  # delays every /oauth/token answer (single-flight and crash tests)
    token_delay_phase: str = "before"  # "before": then act (a client that leaves cancels the grant);
    # "after": act first (rotate the refresh token), then delay the answer — the crash window
    refresh_reuse_interval_seconds: float = 0  # Auth0's rotation overlap: the last spent RT may be
    # presented again this long after its first use (0 = strict single use, as auth.openai.com behaves)
    rate_limits: dict[str, Any] = field(default_factory=dict)  # usage defaults for every account
    access_token_ttl: int = 3600  # seconds, for tokens minted by /oauth/token
    refresh_fault: dict[str, Any] | None = None  # {"status":500,"body":...} for every refresh grant
    refresh_reuse_revokes_family: bool = False  # reusing a spent RT also kills its successors
    refresh_omit: list[str] = field(default_factory=list)  # fields left out of refresh answers
    next_login: dict[str, Any] | None = None  # one-shot identity for the next authorize/device login
    default_login: dict[str, Any] = field(
        default_factory=lambda: {"account_id": "acc-oauth-1", "plan": "plus", "email": "oauth@example.com"}
    )
    device_auto_approve_after: int | None = None  # approve a device code after N pending polls
    strict_redirect_uri: bool = False  # only http://localhost:1455/auth/callback, like the real one
    require_instructions: bool = False  # legacy backend: 400 "Instructions are required"
    system_role: str = "accept"  # "accept" (recorded in notes) or "reject" an input system message
    enforce_usage_limits: bool = True  # set_usage(...=100) makes responses answer usage_limit 429
    set_cookies: bool = False  # streams and WebSocket upgrades set Cloudflare's __cf_bm and cf_clearance
    # cookies (each when the request lacks it, as Cloudflare does)
    websocket_refusal: int = 0  # 0: upgrades are served; else the HTTP status every upgrade is refused with
    record_requests: bool = True
    max_recorded: int = 10_000


CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(FakeConfig))


@dataclass(slots=True)
class AccountUsage:
    """What the rate-limit headers, ``codex.rate_limits`` frames and ``/wham/usage`` report."""

    primary_used: float = 0.0
    primary_window_minutes: int = 300
    primary_reset_at: int = 0
    secondary_used: float = 0.0
    secondary_window_minutes: int = 10080
    secondary_reset_at: int = 0
    has_credits: bool = False
    unlimited: bool = False
    balance: str = "0"
    active_limit: str = "codex"
    plan_type: str | None = None  # None: the plan from the caller's token
    reset_credits: int = 0
    code_review: dict[str, Any] | None = None
    additional: list[dict[str, Any]] = field(default_factory=list)
    promo: Any = None

    def update(self, values: dict[str, Any], now: float) -> None:
        for key, value in values.items():
            if key in ("primary_reset_after", "secondary_reset_after"):
                setattr(self, key.replace("after", "at"), int(now + float(value)))
            elif key in USAGE_FIELDS:
                setattr(self, key, value)
            else:
                raise ValueError(f"unknown usage field {key!r}; known: {sorted(USAGE_KEYS)}")

    @property
    def limit_reached(self) -> bool:
        return self.primary_used >= 100 or self.secondary_used >= 100

    def headers(self) -> dict[str, str]:
        return {
            "x-codex-primary-used-percent": f"{float(self.primary_used):.1f}",
            "x-codex-primary-window-minutes": str(self.primary_window_minutes),
            "x-codex-primary-reset-at": str(self.primary_reset_at),
            "x-codex-secondary-used-percent": f"{float(self.secondary_used):.1f}",
            "x-codex-secondary-window-minutes": str(self.secondary_window_minutes),
            "x-codex-secondary-reset-at": str(self.secondary_reset_at),
            "x-codex-credits-has-credits": "true" if self.has_credits else "false",
            "x-codex-credits-unlimited": "true" if self.unlimited else "false",
            "x-codex-credits-balance": str(self.balance),
            "x-codex-active-limit": self.active_limit,
        }

    def _window(self, used: float, minutes: int, reset_at: int, now: float) -> dict[str, Any]:
        return {
            "used_percent": used,
            "limit_window_seconds": int(minutes) * 60,
            "reset_after_seconds": max(0, int(reset_at - now)),
            "reset_at": reset_at,
        }

    def wham(self, plan: str, now: float) -> dict[str, Any]:
        """The ``/wham/usage`` body, shaped like the backend's."""
        return {
            "plan_type": self.plan_type or plan,
            "rate_limit": {
                "allowed": not self.limit_reached,
                "limit_reached": self.limit_reached,
                "primary_window": self._window(
                    self.primary_used, self.primary_window_minutes, self.primary_reset_at, now
                ),
                "secondary_window": self._window(
                    self.secondary_used, self.secondary_window_minutes, self.secondary_reset_at, now
                ),
            },
            "code_review_rate_limit": self.code_review,
            "additional_rate_limits": self.additional,
            "rate_limit_reset_credits": {"available_count": self.reset_credits},
            "credits": {
                "has_credits": self.has_credits,
                "unlimited": self.unlimited,
                "overage_limit_reached": False,
                "balance": str(self.balance),
                "approx_local_messages": [0, 0],
                "approx_cloud_messages": [0, 0],
            },
            "spend_control": {"reached": False, "individual_limit": None},
            "rate_limit_reached_type": ("primary" if self.primary_used >= 100 else "secondary")
            if self.limit_reached
            else None,
            "promo": self.promo,
        }

    def ws_event(self, plan: str) -> dict[str, Any]:
        """The WS-only ``codex.rate_limits`` frame."""
        return {
            "type": "codex.rate_limits",
            "plan_type": self.plan_type or plan,
            "metered_limit_name": self.active_limit,
            "rate_limits": {
                "allowed": not self.limit_reached,
                "limit_reached": self.limit_reached,
                "primary": {
                    "used_percent": self.primary_used,
                    "window_minutes": self.primary_window_minutes,
                    "reset_at": self.primary_reset_at,
                },
                "secondary": {
                    "used_percent": self.secondary_used,
                    "window_minutes": self.secondary_window_minutes,
                    "reset_at": self.secondary_reset_at,
                },
            },
            "credits": {"has_credits": self.has_credits, "unlimited": self.unlimited, "balance": str(self.balance)},
            "code_review_rate_limits": None,
        }


USAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(AccountUsage))
USAGE_KEYS = USAGE_FIELDS | {"primary_reset_after", "secondary_reset_after"}


@dataclass(slots=True)
class Stats:
    requests: int = 0
    streams_open: int = 0
    aborted_streams: int = 0
    completed_streams: int = 0
    websockets_open: int = 0
    websocket_upgrades: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class FakeState:
    """Everything the control API reads or changes; owned by one FakeCodex."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        unknown = set(defaults) - CONFIG_FIELDS
        if unknown:
            raise TypeError(f"unknown FakeCodex options: {sorted(unknown)}")
        self._defaults = dict(defaults)
        self.reset()

    def reset(self) -> None:
        """Forget scripts, faults, records, counters, usage and config changes."""
        self.config = FakeConfig(**self._defaults)
        self.global_script: deque[dict[str, Any]] = deque()
        self.account_scripts: dict[str, deque[dict[str, Any]]] = {}
        self.faults: dict[str, list[Any]] = {}  # account -> [fault dict, remaining or None]
        self.records: deque[dict[str, Any]] = deque(maxlen=self.config.max_recorded)
        self.usage: dict[str, AccountUsage] = {}
        self.stats = Stats()
        self.refreshes: Counter[str | None] = Counter()
        self.prompt_cache: dict[tuple[str, str], int] = {}

    def configure(self, **values: Any) -> None:
        unknown = set(values) - CONFIG_FIELDS
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}; known: {sorted(CONFIG_FIELDS)}")
        if values.get("token_delay_phase", "before") not in ("before", "after"):
            raise ValueError("token_delay_phase must be 'before' or 'after'")
        for key, value in values.items():
            setattr(self.config, key, value)
        if "max_recorded" in values:
            self.records = deque(self.records, maxlen=int(values["max_recorded"]))

    # -- scripts and faults ------------------------------------------------------------------------

    def script(self, scenarios: tuple[Any, ...] | list[Any], account: str | None = None) -> None:
        checked = [check_scenario(s) for s in scenarios]
        queue = self.global_script if account is None else self.account_scripts.setdefault(account, deque())
        queue.extend(checked)

    def next_scenario(self, account: str) -> dict[str, Any] | None:
        """A sticky fault wins (without consuming a script); then the account's queue, then global."""
        fault = self.take_fault(account, RESPONSE_FAULT_KEYS)
        if fault is not None:
            return fault
        queue = self.account_scripts.get(account)
        if queue:
            return queue.popleft()
        if self.global_script:
            return self.global_script.popleft()
        return None

    def fault(self, account: str, fault: Any, times: int | None = None) -> None:
        self.faults[account] = [check_scenario(fault), times]

    def clear_fault(self, account: str) -> None:
        self.faults.pop(account, None)

    def peek_fault(self, account: str) -> dict[str, Any] | None:
        """The account's fault, not counted as used."""
        entry = self.faults.get(account)
        return entry[0] if entry is not None else None

    def take_fault(self, account: str | None, keys: frozenset[str],
                   only: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
        """The account's fault if it has one of ``keys`` (and passes ``only``), counted as used."""
        entry = self.faults.get(account) if account is not None else None
        if entry is None or not (keys & entry[0].keys()) or (only is not None and not only(entry[0])):
            return None
        if entry[1] is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self.faults[account]
        return entry[0]

    # -- usage -------------------------------------------------------------------------------------

    def usage_for(self, account: str) -> AccountUsage:
        usage = self.usage.get(account)
        if usage is None:
            now = time.time()
            usage = AccountUsage(primary_reset_at=int(now + 9000), secondary_reset_at=int(now + 302400))
            if self.config.rate_limits:
                usage.update(self.config.rate_limits, now)
            self.usage[account] = usage
        return usage

    def set_usage(self, account: str, values: dict[str, Any]) -> None:
        self.usage_for(account).update(values, time.time())

    # -- recording ---------------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        if self.config.record_requests:
            self.records.append(entry)

    def requests(self, path_suffix: str | None = None) -> list[dict[str, Any]]:
        if path_suffix is None:
            return list(self.records)
        return [r for r in self.records if r["path"].endswith(path_suffix)]

    def refresh_count(self, account: str | None = None) -> int:
        if account is None:
            return sum(self.refreshes.values())
        return self.refreshes[account]

    def cached_tokens(self, account: str, key: str | None, input_tokens: int) -> int:
        """Prompt-cache simulation: a repeated key reuses min(previous, current) tokens, 128-aligned."""
        if not key:
            return 0
        slot = (account, key)
        previous = self.prompt_cache.get(slot)
        if len(self.prompt_cache) > 100_000:
            self.prompt_cache.clear()
        self.prompt_cache[slot] = input_tokens
        if previous is None:
            return 0
        return (min(previous, input_tokens) // 128) * 128
