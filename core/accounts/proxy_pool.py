"""The per-account proxy pool: which proxy each account's calls go out through, and which accounts
cannot serve because of their proxy.

Each account has one of four modes:

* ``default`` (no row): the global default, ``tls.proxy_url`` (none: direct);
* ``direct``: never through a proxy, whatever ``tls.proxy_url`` or the environment say;
* ``automatic``: the pool picks a healthy proxy (the one with the fewest accounts, then the
  fastest) and the account keeps it while it works; when it fails the account moves to another
  healthy one, and with none left it stops serving (it never falls back to direct);
* ``specific``: that proxy only; while it is unreachable or disabled the account stops serving,
  and comes back when it passes a check again.

Read on the event loop for every upstream call (``route``) and by the account pool when it picks
an account (``blocked``); changed from the control plane's threads (management, committed to the
store first) and from health checks on the loop (persisted by a background writer).

On a shared store, what another instance changes by hand (proxies, assignments) is read again
whole on the store's listener thread (``load``). Health stays each instance's own: a proxy it
knows, reached the same way, keeps what its own checks found (a proxy may be reachable from one
host and not another); one new to it, or re-addressed, is checked soon (``on_new``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from core.accounts.model import Account
from core.accounts.proxies import MODES, Proxy, ProxyInputError, new_proxy, proxy_fields
from core.accounts.service import ImportResult
from core.codex.errors import ROTATE, UpstreamError
from core.store.proxies import Change, ProxyStore
from core.store.writer import BatchWriter

logger = logging.getLogger(__name__)

Assignment = tuple[str, str | None]  # (mode, proxy id)
Route = Callable[[Account], str | None]  # an account → its proxy URL for the transport (``ProxyPool.route``)
DEFAULT: Assignment = ("default", None)
_CONNECTION = frozenset({"scheme", "host", "port", "username", "password"})


def _same_route(proxy: Proxy, other: Proxy) -> bool:
    """Both are reached the same way (a check of one holds for the other)."""
    return all(getattr(proxy, name) == getattr(other, name) for name in _CONNECTION)


class ProxyInUse(ValueError):
    """A proxy that accounts are pinned to cannot be deleted; the message names them."""


class ProxyPool:
    def __init__(self, store: ProxyStore) -> None:
        self._store = store
        self._lock = threading.Lock()  # memory only, held for dictionary work
        self._admin = threading.Lock()  # one management change at a time (read, commit, then swap in)
        self._proxies: dict[str, Proxy] = {}
        self._assigned: dict[str, Assignment] = {}
        self._urls: dict[str, str] = {}  # proxy id → its URL with credentials, built once (see route)
        self._new: list[Callable[[list[str]], None]] = []
        self._writer: BatchWriter[Change] = BatchWriter("proxy-state-writer", store.write_changes,
                                                         key=lambda change: (change[0], change[1]))  # fmt: skip
        store.subscribe(self.load)

    def load(self) -> None:
        """Read proxies and assignments from the store (off the event loop): at start-up, and when
        another instance changed them. Proxies known here keep the health found here while they
        are reached the same way; assignments not written yet stay."""
        with self._admin:  # a change of this instance's own is either in what is read or made after it
            proxies, assigned = self._store.all(), self._store.assignments()
            with self._lock:
                known, accounts = self._proxies, {*assigned, *self._assigned}
            new = [p.id for p in proxies if p.id not in known or not _same_route(p, known[p.id])]
            assigned.update(self._unwritten_moves(accounts))
            with self._lock:
                self._proxies = {p.id: p if p.id in new else dataclasses.replace(p, **known[p.id].health_row()) for p in proxies}
                self._assigned = {a: assignment for a, assignment in assigned.items() if assignment != DEFAULT}
                self._forget_urls([*new, *(set(known) - set(self._proxies))])
                moved = self._settle()
        self._persist_moves(moved)
        for listener in self._new if new else ():
            listener(new)

    def on_new(self, listener: Callable[[list[str]], None]) -> None:
        """``listener(ids)`` after a load brought proxies this instance had no health of its own for."""
        self._new.append(listener)

    def _unwritten_moves(self, account_ids: Iterable[str]) -> dict[str, Assignment]:
        """Assignments queued for the store and not written yet: newer than what it holds."""
        moves = {}
        for account_id in account_ids:
            if queued := self._writer.unwritten(("assignment", account_id)):
                moves[account_id] = queued[-1][2]
        return moves

    # --- the data plane ----------------------------------------------------------------------------

    # Both run for every call and every account choice. An account on the global default (no
    # row) or direct needs no lock: one dict read, which is atomic, says so.

    def route(self, account: Account) -> str | None:
        """The proxy URL for ``account``'s next call: None for the global default, ``""`` for a
        direct connection. Raises a 503 ``proxy_unavailable`` (the turn moves to another account)
        when its proxy cannot be used."""
        assignment = self._assigned.get(account.id)
        if assignment is None:
            return None
        if assignment[0] == "direct":
            return ""
        with self._lock:
            assignment = self._assigned.get(account.id, DEFAULT)
            reason = self._blocked(assignment)
            if reason is None and assignment[1] is not None:
                url = self._urls.get(assignment[1])
                if url is None:
                    url = self._urls[assignment[1]] = self._proxies[assignment[1]].url()
                return url
        if reason is None:
            return None  # moved to the default meanwhile
        raise UpstreamError(503, "proxy_unavailable", f"account {account.id} cannot serve now: {reason}", action=ROTATE)

    def blocked(self, account_id: str) -> str | None:
        """Why the account cannot serve because of its proxy, or None."""
        assignment = self._assigned.get(account_id)
        if assignment is None or assignment[0] == "direct":
            return None
        with self._lock:
            return self._blocked(self._assigned.get(account_id, DEFAULT))

    def _blocked(self, assignment: Assignment) -> str | None:
        mode, proxy_id = assignment
        proxy = self._proxies.get(proxy_id) if proxy_id else None
        if mode == "automatic" and proxy is None:
            return "automatic proxy mode, and no proxy in the pool is healthy"
        if mode != "specific":
            return None
        if proxy is None:
            return "its proxy was deleted"
        if not proxy.enabled:
            return f"its proxy {proxy.label} is disabled"
        if proxy.status == "unreachable":
            return f"its proxy {proxy.label} is unreachable ({proxy.last_error or 'failed its check'})"
        return None

    def proxy_of_url(self, url: str) -> str | None:
        """The id of the proxy a call went through (the transport reports failures by URL)."""
        with self._lock:
            return next((proxy_id for proxy_id, known in self._urls.items() if known == url), None)

    # --- views -------------------------------------------------------------------------------------

    def get(self, proxy_id: str) -> Proxy | None:
        with self._lock:
            return self._proxies.get(proxy_id)

    def ids(self, enabled_only: bool = False) -> list[str]:
        with self._lock:
            return [p.id for p in self._proxies.values() if p.enabled or not enabled_only]

    def public(self) -> list[dict[str, Any]]:
        """Every proxy as the API shows it, with how many accounts use it."""
        with self._lock:
            users = Counter(pid for mode, pid in self._assigned.values() if pid and mode in ("automatic", "specific"))
            return [{**p.public(), "accounts": users[p.id]} for p in self._proxies.values()]

    def describe(self, account_id: str) -> dict[str, Any]:
        """An account's assignment for the API: mode, proxy, and why it cannot serve (if so)."""
        with self._lock:
            assignment = self._assigned.get(account_id, DEFAULT)
            proxy = self._proxies.get(assignment[1]) if assignment[1] else None
            return {"mode": assignment[0], "proxy_id": assignment[1], "proxy_name": proxy.label if proxy else None,
                    "blocked": self._blocked(assignment)}  # fmt: skip

    def export(self, secrets_too: bool) -> list[dict[str, Any]]:
        with self._lock:
            return [p.export(secrets_too) for p in self._proxies.values()]

    # --- management (control-plane threads) -------------------------------------------------------

    def add(self, entries: Iterable[Any]) -> tuple[ImportResult, list[str]]:
        """Add proxies (URL texts or objects); one that is already here (same scheme, host, port
        and user) is updated instead. Returns the tally and the ids added or changed."""
        result, touched = ImportResult(), []
        with self._admin:
            with self._lock:
                known = {p.key: p for p in self._proxies.values()}
                addresses = Counter(p.key[:3] for p in self._proxies.values())
                by_address = {p.key[:3]: p for p in self._proxies.values()}
            pending: dict[str, Proxy] = {}
            for index, entry in enumerate(entries):
                try:
                    proxy = new_proxy(entry)
                except ProxyInputError as exc:
                    result.failed += 1
                    result.errors.append({"index": index, "error": str(exc)})
                    continue
                existing = known.get(proxy.key)
                if existing is None and proxy.username is None and addresses[proxy.key[:3]] == 1:
                    existing = by_address[proxy.key[:3]]  # an export without credentials, read back here
                if existing is None:
                    result.added += 1
                else:
                    given = {k: v for k, v in proxy_fields(entry).items() if v is not None}
                    proxy = dataclasses.replace(existing, **given, updated_at=time.time())
                    result.updated += 1
                known[proxy.key] = pending[proxy.id] = proxy
            self._store.save(pending.values())
            with self._lock:
                self._proxies.update(pending)
                self._forget_urls(pending)
                moved = self._settle()
            touched = list(pending)
        self._persist_moves(moved)
        return result, touched

    def update(self, proxy_id: str, changes: dict[str, Any]) -> Proxy:
        """Edit one proxy. ``password``: absent keeps it, null or "" clears it. Changing how it
        is reached forgets its health (it is checked again)."""
        with self._admin:
            current = self.get(proxy_id)
            if current is None:
                raise KeyError(proxy_id)
            merged = {"scheme": current.scheme, "host": current.host, "port": current.port, "username": current.username,
                      "password": current.password, "name": current.name, "enabled": current.enabled}  # fmt: skip
            merged.update({k: v for k, v in changes.items() if k in merged or k == "url"})
            values = proxy_fields(merged)
            if "url" in changes and "password" not in changes and values["password"] is None \
                    and values["username"] == current.username:
                values["password"] = current.password  # a URL shown masked comes back without it
            proxy = dataclasses.replace(current, **values, updated_at=time.time())
            if not _same_route(proxy, current):
                proxy = dataclasses.replace(proxy, status="unknown", checked_at=None, latency_ms=None, exit_ip=None,
                                            last_error=None)  # fmt: skip
            self._store.save([proxy])
            with self._lock:
                self._proxies[proxy.id] = proxy
                self._forget_urls([proxy.id])
                moved = self._settle()
        self._writer.put(("health", proxy.id, proxy.health_row()))  # after any older result still queued
        self._persist_moves(moved)
        return proxy

    def remove(self, proxy_ids: Iterable[str]) -> list[str]:
        """Delete proxies; automatic-mode accounts on them move. Refused (nothing deleted) while
        an account is pinned to one of them."""
        with self._admin:
            with self._lock:
                ids = [i for i in dict.fromkeys(proxy_ids) if i in self._proxies]
                pinned = sorted(a for a, (mode, pid) in self._assigned.items() if mode == "specific" and pid in ids)
            if pinned:
                raise ProxyInUse(f"accounts use this proxy as their specific proxy: {', '.join(pinned)}; "
                                 "give them another mode or proxy first")  # fmt: skip
            self._store.delete(ids)
            with self._lock:
                for proxy_id in ids:
                    del self._proxies[proxy_id]
                self._forget_urls(ids)
                moved = self._settle()
        self._persist_moves(moved)
        return ids

    def assign(self, account_ids: Iterable[str], mode: str, proxy_id: str | None = None) -> dict[str, Assignment]:
        """Put accounts (that exist: the caller checks) in ``mode``; ``proxy_id`` for ``specific``.
        Automatic mode picks a proxy at once when one is healthy. Returns the new assignments."""
        if mode not in MODES:
            raise ProxyInputError(f"mode must be one of {', '.join(MODES)}")
        if mode == "specific" and (proxy_id is None or self.get(proxy_id) is None):
            raise ProxyInputError(f"no proxy {proxy_id}" if proxy_id else "specific mode needs a proxy_id")
        wanted: Assignment = (mode, proxy_id if mode == "specific" else None)
        with self._admin:
            ids = list(dict.fromkeys(account_ids))
            with self._lock:
                planned = dict(self._assigned)
                for account_id in ids:
                    if mode != "automatic" or planned.get(account_id, DEFAULT)[0] != "automatic":
                        planned[account_id] = wanted  # (one already automatic keeps its proxy)
                chosen = self._settle(planned, only=set(ids))
            result = {a: chosen.get(a, planned[a]) for a in ids}
            self._store.assign(result)
            with self._lock:
                for account_id, assignment in result.items():
                    if assignment == DEFAULT:
                        self._assigned.pop(account_id, None)
                    else:
                        self._assigned[account_id] = assignment
        self._persist_moves(result)  # after any automatic move the writer still had queued for them
        return result

    def _forget_urls(self, proxy_ids: Iterable[str]) -> None:
        for proxy_id in proxy_ids:
            self._urls.pop(proxy_id, None)

    def forget(self, account_id: str) -> None:
        """The account is gone (its row went with it)."""
        with self._lock:
            self._assigned.pop(account_id, None)

    # --- health ------------------------------------------------------------------------------------

    def record_check(self, proxy_id: str, error: str | None, latency_ms: float | None, exit_ip: str | None) -> Proxy | None:
        """A health check's result (on the loop): an unreachable proxy's automatic accounts move,
        a recovered one takes accounts that had none; persisted in the background."""
        with self._lock:
            proxy = self._proxies.get(proxy_id)
            if proxy is None:
                return None
            before = proxy.status
            proxy.status = "unreachable" if error else "ok"
            proxy.checked_at = time.time()
            proxy.last_error = error
            proxy.latency_ms = latency_ms
            if exit_ip or error is None:
                proxy.exit_ip = exit_ip
            moved = self._settle() if proxy.status != before else {}
            pinned = [a for a, (mode, pid) in self._assigned.items() if mode == "specific" and pid == proxy_id]
            snapshot = dataclasses.replace(proxy)
        self._writer.put(("health", proxy_id, snapshot.health_row()))
        self._persist_moves(moved)
        if snapshot.status != before:
            self._log_change(snapshot, before, moved, pinned)
        return snapshot

    def _log_change(self, proxy: Proxy, before: str, moved: dict[str, Assignment], pinned: list[str]) -> None:
        if proxy.status == "unreachable":
            logger.warning("proxy %s is unreachable: %s", proxy.label, proxy.last_error)
            if pinned:
                logger.warning("accounts %s stop serving until proxy %s passes a check again", ", ".join(pinned), proxy.label)
        else:
            logger.info("proxy %s is %s (was %s): exit address %s, %.0f ms", proxy.label, proxy.status, before,
                        proxy.exit_ip or "unknown", proxy.latency_ms or 0)  # fmt: skip
            if pinned and before == "unreachable":
                logger.info("accounts %s serve again through proxy %s", ", ".join(pinned), proxy.label)
        for account_id, (_, proxy_id) in moved.items():
            target = self._proxies.get(proxy_id) if proxy_id else None
            logger.info("account %s (automatic) now goes through %s", account_id, target.label if target else "no proxy: none is healthy")

    # --- automatic mode ----------------------------------------------------------------------------

    def _settle(self, assigned: dict[str, Assignment] | None = None, only: set[str] | None = None) -> dict[str, Assignment]:
        """Give every automatic-mode account (of ``only``, if given) a usable proxy, keeping the
        one it has while that is enabled and not unreachable. Called under the lock; applies the
        moves to ``self._assigned`` unless ``assigned`` is a plan, and returns them."""
        plan = self._assigned if assigned is None else assigned
        usable = {p.id for p in self._proxies.values() if p.enabled and p.status != "unreachable"}
        healthy = [p for p in self._proxies.values() if p.enabled and p.status == "ok"]
        load = Counter(pid for mode, pid in plan.values() if pid in usable and mode in ("automatic", "specific"))
        moves: dict[str, Assignment] = {}
        for account_id, (mode, proxy_id) in plan.items():
            if mode != "automatic" or (only is not None and account_id not in only) or proxy_id in usable:
                continue
            best = min(healthy, key=lambda p: (load[p.id], p.latency_ms if p.latency_ms is not None else math.inf, p.added_at),
                       default=None)  # fmt: skip
            if best is not None:
                load[best.id] += 1
            if (best.id if best else None) != proxy_id:
                moves[account_id] = ("automatic", best.id if best else None)
        if assigned is None:
            self._assigned.update(moves)
        return moves

    def _persist_moves(self, moved: dict[str, Assignment]) -> None:
        for account_id, assignment in moved.items():
            self._writer.put(("assignment", account_id, assignment))

    def flush(self, timeout: float = 5.0) -> bool:
        return self._writer.flush(timeout)

    def close(self) -> None:
        self._writer.close()
