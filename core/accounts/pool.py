"""The in-memory account pool: which account serves the next request, and what the backend's
answers (errors, rate-limit headers) do to an account.

The pool is read on the event loop for every request and written from the control plane's
threads, so its state sits behind one lock held only for dictionary work. State changes are
persisted by a background writer (coalesced per account, only the fields that changed); token
changes never go through here (core/accounts/tokens.py commits those itself, before they are used).

On a shared store (several instances on one PostgreSQL) the store tells the pool, on its listener
thread, which accounts another instance changed; the pool reloads those rows and takes what they
say — but never over a change of its own that is not written yet.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.accounts.affinity import LIMIT as AFFINITY_LIMIT
from core.accounts.affinity import Affinity, digest
from core.accounts.model import STATE_FIELDS, WAITING, Account
from core.accounts.plans import PlanModels
from core.accounts.quota import Member, Quota, crossed, thresholds_for, warnings_for
from core.accounts.strategies import Candidate, RotationState, pick
from core.codex.errors import UpstreamError
from core.config import ConfigStore
from core.store.accounts import AccountStore
from core.store.affinity import AffinityStore, Binding
from core.store.writer import BatchWriter

logger = logging.getLogger(__name__)

StateChange = tuple[str, dict[str, Any]]
WAIT_FIELDS = ("status", "cooldown_until")
RENEWING_FIELDS = ("access_token", "refresh_token", "expires_at", "plan", "status", "refresh_error")  # timers and catalogs care
Gate = Callable[[str], str | None]  # account id → why it cannot serve now (its proxy), or None


def _open_gate(account_id: str) -> str | None:
    return None


@dataclass(slots=True)
class _Runtime:
    """What the pool knows about an account only while this process runs."""

    in_flight: int = 0
    served: int = 0
    warned: dict[str, float] = field(default_factory=dict)  # window -> highest threshold logged


@dataclass(frozen=True, slots=True)
class Availability:
    """Why no account could be chosen, for the client's error."""

    total: int
    serving: int  # accounts that are active right now
    plan_excluded: bool  # some could serve, but none on a plan that has the model
    rate_limited_until: float | None  # earliest end of a quota/429 wait
    cooldown_until: float | None  # earliest end of a Cloudflare cooldown
    gated: str | None  # why an active account cannot serve: its proxy (the first one found)


class AccountPool:
    def __init__(self, store: AccountStore, affinity: AffinityStore, config: ConfigStore, plans: PlanModels | None = None) -> None:
        self._store = store
        self._affinity_store = affinity
        self._config = config
        self.plans = plans or PlanModels()
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._runtime: dict[str, _Runtime] = {}
        self._rotation = RotationState()
        self._affinity = Affinity()
        self._listeners: list[Callable[[str], None]] = []
        self.gate: Gate = _open_gate  # the proxy pool's verdict (core/accounts/proxy_pool.py)
        self._writer: BatchWriter[StateChange] = BatchWriter(
            "account-state-writer", self._write_states, key=lambda change: change[0],
            merge=lambda old, new: (new[0], {**old[1], **new[1]}),
        )  # fmt: skip
        self._affinity_writer: BatchWriter[tuple[Binding, bool]] = BatchWriter(
            "affinity-writer", self._write_affinity, key=lambda change: change[0][0],
            merge=lambda old, new: (new[0], old[1] or new[1]),
        )  # fmt: skip
        store.on_remote_change(self._remote_changed, self.remove, self._reload)
        affinity.on_remote_move(self._remote_moved)

    # --- membership ------------------------------------------------------------------------------

    def load(self) -> None:
        """Read every account, and the live conversation bindings, from the store (off the event loop)."""
        accounts = self._store.all()
        bindings = self._affinity_store.load(time.time(), AFFINITY_LIMIT)
        with self._lock:
            self._accounts = {a.id: a for a in accounts}
            for conversation, account_id, expires_at in reversed(bindings):  # the longest-lived end up newest
                self._affinity.learn(conversation, account_id, expires_at, known_only=False)

    def on_change(self, listener: Callable[[str], None]) -> None:
        """``listener(account_id)`` after an account is added, replaced or removed (any thread)."""
        self._listeners.append(listener)

    def all(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    def get(self, account_id: str) -> Account | None:
        with self._lock:
            return self._accounts.get(account_id)

    def put(self, account: Account) -> Account:
        """Adopt an account the caller has already committed to SQLite. An existing one keeps its
        identity (turns in flight hold it) and takes the new fields."""
        with self._lock:
            current = self._accounts.get(account.id)
            if current is None:
                current = self._accounts[account.id] = account
            else:
                current.adopt(account)
        self._notify(account.id)
        return current

    def remove(self, account_ids: Iterable[str]) -> None:
        ids = set(account_ids)
        with self._lock:
            for account_id in ids:
                self._accounts.pop(account_id, None)
                self._runtime.pop(account_id, None)
            self._affinity.forget(ids)
        for account_id in ids:
            self._notify(account_id)

    def _notify(self, account_id: str) -> None:
        for listener in self._listeners:
            try:
                listener(account_id)
            except Exception:
                logger.exception("account listener failed")

    # --- choosing --------------------------------------------------------------------------------

    def _refresh_waiting(self, account: Account, now: float) -> None:
        """A wait that is over ends here (called under the lock)."""
        if account.status in WAITING and (account.cooldown_until or 0) <= now:
            account.status = "active"
            account.cooldown_until = None
            self._persist(account, WAIT_FIELDS)
        elif account.status == "active" and account.refresh_error and account.is_expired(now):
            account.status = "expired"  # its refresh token is dead and now its access token too
            self._persist(account, WAIT_FIELDS)

    def _serving(self, now: float, exclude: set[str]) -> list[Account]:
        skip_exhausted = self._config.current.quota.skip_exhausted
        serving = []
        for account in self._accounts.values():
            self._refresh_waiting(account, now)
            if account.id in exclude or account.status != "active" or self.gate(account.id) is not None:
                continue
            if skip_exhausted and account.quota is not None and account.quota.exhausted_until(now):
                continue
            serving.append(account)
        return serving

    def choose(self, model: str, conversation_key: str | None = None, exclude: Iterable[str] = (),
               prefer: str | None = None) -> Account | None:
        """The account to serve ``model`` next, counted as in flight until ``release``. ``prefer``
        wins when it can serve (the account a continued response lives on)."""
        cfg = self._config.current
        now = time.time()
        conversation = digest(conversation_key) if conversation_key and cfg.auth.session_affinity else None
        with self._lock:
            routed = [a for a in self._serving(now, set(exclude)) if self.plans.serves(a.plan, model)]
            if not routed:
                return None
            account = next((a for a in routed if a.id == prefer), None) if prefer else None
            if account is None and conversation:
                bound = self._affinity.get(conversation, now)
                account = next((a for a in routed if a.id == bound), None)
            if account is None:
                chosen = pick(cfg.auth.rotation_strategy, [self._candidate(a, now) for a in routed], self._rotation)
                account = self._accounts[chosen.id]
            runtime = self._runtime.setdefault(account.id, _Runtime())
            runtime.in_flight += 1
            runtime.served += 1
            account.last_used_at = now  # written with the next state change, or at shutdown
        return account

    def _candidate(self, account: Account, now: float) -> Candidate:
        runtime = self._runtime.get(account.id) or _Runtime()
        return Candidate(
            id=account.id,
            order=(account.added_at, account.id),
            in_flight=runtime.in_flight,
            used_percent=account.quota.used(now) if account.quota else 0.0,
            served=runtime.served,
            last_used_at=account.last_used_at or 0.0,
        )

    def release(self, account: Account) -> None:
        """The request ``choose`` counted is over (it was answered, failed or moved on)."""
        with self._lock:
            runtime = self._runtime.get(account.id)
            if runtime is not None and runtime.in_flight > 0:
                runtime.in_flight -= 1

    def bind(self, conversation_key: str | None, account: Account) -> None:
        """Keep ``conversation_key`` on ``account`` while it can serve (prompt-cache hits)."""
        if not conversation_key:
            return
        conversation = digest(conversation_key)
        ttl = self._config.current.auth.affinity_ttl_minutes * 60
        expires_at = time.time() + ttl
        with self._lock:
            store, moved = self._affinity.bind(conversation, account.id, expires_at, ttl)
        if store:
            self._affinity_writer.put(((conversation, account.id, expires_at), moved))

    async def recall(self, conversation_key: str | None) -> None:
        """On a shared store, before a turn chooses: a conversation this instance has not seen
        may have been bound by another one; look it up (in a thread: never blocks the loop)."""
        if not conversation_key or not self._affinity_store.shared or not self._config.current.auth.session_affinity:
            return
        conversation = digest(conversation_key)
        now = time.time()
        with self._lock:
            if self._affinity.get(conversation, now) is not None:
                return
        try:
            found = await asyncio.to_thread(self._affinity_store.lookup, conversation, now)
        except Exception:  # affinity is worth a cache hit, not a failed turn
            logger.warning("looking up a conversation's account in the store failed", exc_info=True)
            return
        if found is not None:
            with self._lock:
                self._affinity.learn(conversation, *found, known_only=False)

    def availability(self, model: str) -> Availability:
        now = time.time()
        with self._lock:
            serving = self._serving(now, set())
            waits = [a for a in self._accounts.values() if a.status in WAITING and a.cooldown_until]
            exhausted = [a.quota.exhausted_until(now) for a in serving if a.quota and a.quota.exhausted_until(now)]
            limited = [a.cooldown_until for a in waits if a.status == "rate_limited"] + exhausted
            return Availability(
                total=len(self._accounts),
                serving=len(serving),
                plan_excluded=bool(serving) and not any(self.plans.serves(a.plan, model) for a in serving),
                rate_limited_until=min(limited, default=None),
                cooldown_until=min((a.cooldown_until for a in waits if a.status == "cooldown"), default=None),
                gated=next((r for a in self._accounts.values() if a.status == "active" and (r := self.gate(a.id))), None),
            )

    # --- what the backend told us ----------------------------------------------------------------

    def apply_error(self, account: Account, error: UpstreamError) -> None:
        """Record what an upstream failure says about the account that produced it."""
        effect = error.account_effect
        if effect is None:
            return
        cfg = self._config.current
        now = time.time()
        with self._lock:
            if effect in ("rate_limited", "quota_exhausted"):
                wait = error.retry_after if error.retry_after else cfg.auth.rate_limit_backoff_seconds
                self._wait(account, "rate_limited", now + wait)
            elif effect == "cooldown":
                self._wait(account, "cooldown", now + cfg.auth.cooldown_seconds)
                if error.code == "upstream_blocked":
                    account.cookies.clear()  # a replayed Cloudflare cookie may be what got the path blocked
            elif effect in ("expired", "banned"):
                account.status = effect
            account.last_error = f"{error.status} {error.code}: {error.message}"[:500]
        self._persist(account, (*WAIT_FIELDS, "last_error", "cookies"))

    @staticmethod
    def _wait(account: Account, status: str, until: float) -> None:
        if account.status in ("expired", "banned", "disabled"):
            return  # a worse state is not lifted by a wait
        account.status = status
        account.cooldown_until = max(account.cooldown_until or 0, until)  # never shorten a known later reset

    def record_quota(self, account: Account, quota: Quota) -> None:
        """A rate-limit snapshot from a response header or /wham/usage."""
        cfg = self._config.current
        now = time.time()
        with self._lock:
            before = (account.quota, account.status)
            account.quota = account.quota.merged(quota) if account.quota else quota
            until = account.quota.exhausted_until(now)
            if until and cfg.quota.skip_exhausted and account.status == "active":
                self._wait(account, "rate_limited", until)
            setting = cfg.quota.warning_thresholds
            runtime = self._runtime.setdefault(account.id, _Runtime())
            for name, window in (("primary", account.quota.primary), ("secondary", account.quota.secondary)):
                level = crossed(window.used(now), thresholds_for(setting, name)) if window else None
                if level is not None and level > runtime.warned.get(name, 0):
                    logger.warning("account %s (%s): %s quota window at %.0f%% (threshold %g%%)",
                                   account.id, account.email or "?", name, window.used(now), level)  # fmt: skip
                runtime.warned[name] = level or 0
            changed = before[1] != account.status or before[0] is None or not before[0].same_usage(account.quota)
        if changed:  # not a write per response when nothing moved
            self._persist(account, ("quota", *WAIT_FIELDS))

    def store_cookies(self, account: Account, set_cookies: list[str], url: str) -> None:
        """The ``Set-Cookie`` values of an answer ``account`` got from ``url``."""
        with self._lock:
            changed = account.cookies.update(set_cookies, url)
        if changed:  # Cloudflare re-sends the same cookies often: no write when nothing moved
            self._persist(account, ("cookies",))

    def set_status(self, account_ids: Iterable[str], status: str) -> list[str]:
        """The management API's status switch (active / disabled); returns the ids changed."""
        changed = []
        with self._lock:
            for account_id in account_ids:
                account = self._accounts.get(account_id)
                if account is None:
                    continue
                account.status = status
                if status == "active":
                    account.cooldown_until = None
                    account.last_error = None
                changed.append(account)
        for account in changed:
            self._persist(account, (*WAIT_FIELDS, "last_error"))
        return [a.id for a in changed]

    def committed(self, account: Account, fields: dict[str, Any]) -> None:
        """Fields (tokens, state) the token manager has already committed to SQLite. State fields
        are queued again all the same, so that no older pending state write lands after that commit."""
        with self._lock:
            for name, value in fields.items():
                setattr(account, name, value)
        if names := STATE_FIELDS & fields.keys():
            self._persist(account, tuple(names))

    def update(self, account: Account, **state: Any) -> None:
        """Set state fields (status, last_error, refresh_error, cooldown_until...) and persist them."""
        with self._lock:
            for name, value in state.items():
                setattr(account, name, value)
        self._persist(account, tuple(state))

    # --- views -----------------------------------------------------------------------------------

    def current(self) -> list[Account]:
        """Every account, with waits that are over ended first (what the API should show)."""
        now = time.time()
        with self._lock:
            for account in self._accounts.values():
                self._refresh_waiting(account, now)
            return list(self._accounts.values())

    def members(self) -> list[Member]:
        """The accounts that can serve now or after a wait, for the pooled quota view."""
        return [
            Member(a.quota, a.cooldown_until if a.status in WAITING else None, a.plan)
            for a in self.current()
            if a.status == "active" or a.status in WAITING
        ]

    def warnings(self) -> list[dict[str, Any]]:
        now = time.time()
        setting = self._config.current.quota.warning_thresholds
        with self._lock:
            return [
                {"account_id": a.id, "email": a.email, "label": a.label, "status": a.status, **warning}
                for a in self._accounts.values()
                for warning in warnings_for(a.quota, setting, now)
            ]

    # --- persistence -----------------------------------------------------------------------------

    def _persist(self, account: Account, names: Iterable[str]) -> None:
        """Queue the fields that changed (and the last use, which rides along): writing only those
        keeps this instance from overwriting what another one changed in the other fields."""
        row = account.state_row()
        self._writer.put((account.id, {name: row[name] for name in (*names, "last_used_at") if name in row}))

    def _write_states(self, changes: list[StateChange]) -> None:
        self._store.write_states(dict(changes))

    def _write_affinity(self, changes: list[tuple[Binding, bool]]) -> None:
        self._affinity_store.write([binding for binding, _ in changes], [binding for binding, moved in changes if moved])

    # --- what other instances changed (the store's listener thread) -----------------------------------

    def _unwritten(self, account_id: str) -> set[str]:
        return {name for _, fields in self._writer.unwritten(account_id) for name in fields}

    def _remote_changed(self, account_ids: list[str]) -> None:
        """Another instance committed these accounts: take what the store holds now."""
        mine = {account_id: self._unwritten(account_id) for account_id in account_ids}
        stored = self._store.get_many(account_ids)
        self._adopt(stored, mine)
        gone = set(account_ids) - {a.id for a in stored}
        if gone:
            self.remove(gone)

    def _reload(self) -> None:
        """Listening (re)started: whatever was missed meanwhile, the whole pool again."""
        with self._lock:
            known = list(self._accounts)
        mine = {account_id: self._unwritten(account_id) for account_id in known}
        stored = self._store.all()
        self._adopt(stored, mine)
        gone = set(known) - {a.id for a in stored}
        if gone:
            self.remove(gone)

    def _adopt(self, stored: list[Account], mine: dict[str, set[str]]) -> None:
        renewed = []
        with self._lock:
            for account in stored:
                current = self._accounts.get(account.id)
                if current is None:
                    self._accounts[account.id] = account
                    renewed.append(account.id)
                    continue
                keep = mine.get(account.id, set()) | self._unwritten(account.id)  # ours, not yet written: newer
                kept = {name: getattr(current, name) for name in keep}
                before = tuple(getattr(current, name) for name in RENEWING_FIELDS)
                last_used = max(current.last_used_at or 0.0, account.last_used_at or 0.0) or None
                current.adopt(account)
                for name, value in kept.items():
                    setattr(current, name, value)
                current.last_used_at = last_used
                if before != tuple(getattr(current, name) for name in RENEWING_FIELDS):
                    renewed.append(account.id)
        for account_id in renewed:
            self._notify(account_id)

    def _remote_moved(self, bindings: list[Binding]) -> None:
        """Another instance moved conversations to other accounts; update those this one holds."""
        with self._lock:
            for conversation, account_id, expires_at in bindings:
                self._affinity.learn(conversation, account_id, expires_at, known_only=True)

    def flush(self, timeout: float = 5.0) -> bool:
        return self._writer.flush(timeout) and self._affinity_writer.flush(timeout)

    def close(self) -> None:
        for account in self.all():  # last_used_at is not written on every request
            self._persist(account, ())
        self._writer.close()
        self._affinity_writer.close()
