"""Access tokens that are fresh when used, and refresh tokens that survive a crash.

Refresh tokens rotate: the server kills the one presented as it answers with its successor. So:

* **Single flight.** One refresh per account at a time; everyone else (the scheduler, N requests,
  a 401 retry) awaits the same task. The task is never cancelled by a caller going away: a refresh
  abandoned after the server rotated would lose the new token.
* **Write-ahead marker, commit on arrival.** Before the refresh token is sent, a marker
  (``refresh_started_at``/``refresh_owner``) is committed in the same transaction that re-reads
  the stored tokens (if another process or an import already rotated them, those are adopted and
  nothing is sent). The answer is committed — successor tokens stored, marker cleared, one durable
  commit — before any request may use the new access token.
* **Across processes.** The store's refresh lock (core/store/locks.py) keeps a second process —
  another instance on the same PostgreSQL — from refreshing the same account meanwhile: it waits
  for the lock, finds the successor committed, and adopts it (so does every other instance, told
  by the store). On PostgreSQL the lock dies with its process, so a marker whose lock is free was
  left by a dead one; instances that share the store look for such markers every few seconds.
* **Recovery.** A marker found at start-up means the previous process died mid-refresh. The stored
  refresh token is exactly the one that was in flight, and it is presented again at once: if the
  server never acted on it (death before the request, or the server dropped the request) this
  simply succeeds; if the server had rotated it and its answer died with the process, the server
  says ``refresh_token_reused`` — unless it grants a reuse interval (Auth0's rotation overlap),
  in which case the retry within that interval recovers the account. Nothing more can be done
  client-side: the account keeps serving on its access token until that expires, and is reported
  as needing a new login.

Failures: a permanent one (``refresh_token_*``, ``invalid_grant``…) stops refreshing the account
(``banned`` when deactivated, otherwise ``expired`` once its access token is gone); a temporary one
backs off exponentially with jitter (``auth.refresh_retry_*``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import uuid
from typing import Any

from core.accounts import oauth
from core.accounts.claims import InvalidToken, parse_access_token
from core.accounts.model import Account
from core.accounts.oauth import OAuthError, TokenSet
from core.accounts.pool import AccountPool
from core.accounts.proxy_pool import Route
from core.codex.errors import ROTATE, UpstreamError
from core.config import ConfigStore
from core.store.accounts import TOKEN_FIELDS, AccountStore
from core.upstream.transport import UpstreamTransport

logger = logging.getLogger(__name__)

USE_MARGIN = 10.0  # a request waits for a refresh when its access token has less left than this
MIN_REFRESH_INTERVAL = 60.0  # after a refresh, the next scheduled one waits at least this long
RECOVERY_SWEEP_SECONDS = 3.0  # shared store: how often to look for refreshes a dead instance left
COMMIT_ATTEMPTS = 3
BUSY_POLL = 0.25


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TokenManager:
    def __init__(self, config: ConfigStore, pool: AccountPool, store: AccountStore, transport: UpstreamTransport,
                 route: Route) -> None:
        self._config = config
        self._pool = pool
        self._store = store
        self._transport = transport
        self._route = route  # the account's proxy: its refreshes go out the way its turns do
        self.owner = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"  # whose refresh marker is whose
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[str, asyncio.Task[Account]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._unsaved: set[str] = set()  # accounts whose live tokens failed to reach the disk
        self._seen: dict[str, str] = {}  # the access token each account's timer was last armed for
        self._sweeper: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """On the event loop: recover interrupted refreshes, then schedule every account."""
        loop = self._loop = asyncio.get_running_loop()
        self._pool.on_change(lambda account_id: loop.call_soon_threadsafe(self.schedule, account_id))
        for account_id, started in await asyncio.to_thread(self._store.interrupted_refreshes, self.owner):
            logger.warning("account %s: a token refresh started %s was interrupted (the process died); "
                           "retrying it with the stored refresh token", account_id, time.ctime(started))  # fmt: skip
            self._spawn(self.refresh(account_id, reason="recovery"))
        for account in self._pool.all():
            if account.id not in self._running:
                self.schedule(account.id)
        if self._store.shared:
            self._sweeper = loop.create_task(self._sweep())

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def _sweep(self) -> None:
        """Shared store: refreshes another instance died in the middle of are taken over here."""
        while True:
            await asyncio.sleep(RECOVERY_SWEEP_SECONDS)
            try:
                orphans = await asyncio.to_thread(self._store.interrupted_refreshes, self.owner)
            except Exception:
                logger.warning("looking for interrupted token refreshes failed", exc_info=True)
                continue
            for account_id, started in orphans:
                if account_id not in self._running and self._pool.get(account_id) is not None:
                    logger.warning("account %s: a token refresh another instance started %s was interrupted; "
                                   "taking it over", account_id, time.ctime(started))  # fmt: skip
                    self._spawn(self.refresh(account_id, reason="recovery"))

    def _spawn(self, coro: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # errors were logged where raised

    # --- scheduling --------------------------------------------------------------------------------

    def schedule(self, account_id: str, at: float | None = None, not_before: float = 0.0) -> None:
        """(Re)arm the account's refresh timer: ``at``, or ``exp − refresh_margin`` (±15% jitter),
        but not before ``not_before`` (a margin longer than the token's life must not loop)."""
        if self._loop is None:
            return
        if timer := self._timers.pop(account_id, None):
            timer.cancel()
        account = self._pool.get(account_id)
        if account is None or not account.refresh_token or account.refresh_error or account.status in ("banned", "disabled"):
            return
        seen, self._seen[account_id] = self._seen.get(account_id), account.access_token
        if seen is not None and seen != account.access_token:  # renewed (here or by another instance) just now
            not_before = max(not_before, time.time() + MIN_REFRESH_INTERVAL)
        if at is None:
            margin = self._config.current.auth.refresh_margin_seconds * random.uniform(0.85, 1.15)
            at = (account.expires_at or 0) - margin
        delay = max(0.0, at - time.time(), not_before - time.time())
        self._timers[account_id] = self._loop.call_later(delay, self._due, account_id)

    def _due(self, account_id: str) -> None:
        self._timers.pop(account_id, None)
        self._spawn(self.refresh(account_id, reason="scheduled"))

    # --- the request path ------------------------------------------------------------------------

    async def ensure_fresh(self, account: Account) -> Account:
        """An account whose access token is good to send now, refreshing (single-flight) when it
        has expired or is about to. Raises an UpstreamError that rotates to another account when
        this one cannot get a usable token."""
        if not account.is_expired(margin=USE_MARGIN):
            return account
        if not account.refresh_token or account.refresh_error:
            raise UpstreamError(401, "token_expired", f"The access token of {account.id} has expired and cannot be refreshed; log in again.",
                                account_effect="expired", action=ROTATE)  # fmt: skip
        retry_at = self._retry_at.get(account.id, 0)
        if retry_at > time.time():
            raise UpstreamError(503, "token_refresh_backoff", f"Refreshing the token of {account.id} failed; retrying in "
                                f"{retry_at - time.time():.0f}s.", action=ROTATE)  # fmt: skip
        try:
            return await self.refresh(account.id, stale=account.access_token, reason="expired")
        except OAuthError as exc:
            raise UpstreamError(401 if exc.permanent else 503, "token_refresh_failed", str(exc), action=ROTATE) from None

    async def refresh(self, account_id: str, *, stale: str | None = None, reason: str = "") -> Account:
        """Refresh the account's tokens, once however many ask at the same time. ``stale``: the
        access token the caller found wanting — if the account holds another one by now, it was
        refreshed meanwhile and there is nothing to do."""
        account = self._pool.get(account_id)
        if account is None:
            raise OAuthError(0, "account_removed", f"account {account_id} no longer exists")
        if stale is not None and account.access_token != stale:
            return account
        task = self._running.get(account_id)
        if task is None:
            assert self._loop is not None
            task = self._running[account_id] = self._loop.create_task(self._refresh_guarded(account, reason))
            task.add_done_callback(lambda _: self._running.pop(account_id, None))
        return await asyncio.shield(task)  # a caller that goes away must not abort the refresh

    # --- one refresh -----------------------------------------------------------------------------

    def _holder_alive(self, holder: str, started: float) -> bool:
        """Is the process that set this marker still refreshing? (Same host: the pid tells.)"""
        if time.time() - started > 2 * self._config.current.auth.refresh_timeout_seconds + 5:
            return False
        pid_text = holder.split(":", 1)[0]
        return pid_text.isdigit() and int(pid_text) != os.getpid() and _pid_alive(int(pid_text))

    async def _refresh_guarded(self, account: Account, reason: str) -> Account:
        """A bug or a broken disk must surface as a (temporary) refresh failure, not a 500."""
        try:
            return await self._refresh(account, reason)
        except OAuthError:
            raise
        except Exception as exc:
            logger.exception("account %s: token refresh failed unexpectedly", account.id)
            # The marker stays (the refresh token may be spent); the lock goes, so that this or
            # another instance's recovery can finish the refresh.
            await asyncio.to_thread(self._store.abandon_refresh, account.id)
            raise OAuthError(0, "internal_error", f"{type(exc).__name__}: {exc}") from None

    async def _refresh(self, account: Account, reason: str) -> Account:
        if timer := self._timers.pop(account.id, None):
            timer.cancel()
        seen = (account.refresh_token, account.access_token)  # memory may take another's result while we wait
        claim = await asyncio.to_thread(self._store.claim_refresh, account.id, self.owner, self._holder_alive)
        deadline = time.time() + 2 * self._config.current.auth.refresh_timeout_seconds + 5
        while claim.busy and time.time() < deadline:  # another live process is refreshing it: wait for its result
            await asyncio.sleep(BUSY_POLL)
            claim = await asyncio.to_thread(self._store.claim_refresh, account.id, self.owner, self._holder_alive)
        stored = claim.stored
        if stored is None:
            raise OAuthError(0, "account_removed", f"account {account.id} no longer exists")
        if claim.busy:
            raise OAuthError(0, "refresh_busy", "another process kept refreshing this account")
        if account.id in self._unsaved:
            stored = account  # memory holds the live tokens the disk could not take; the stored ones are dead
        elif (stored.refresh_token, stored.access_token) != seen:
            # Rotated elsewhere (another instance or process, a re-import) just now: adopt it, and
            # refresh again only when asked to, or when what it holds is unusable already.
            self._pool.committed(account, {name: getattr(stored, name) for name in TOKEN_FIELDS})
            if stored.refresh_token and not stored.is_expired(margin=USE_MARGIN) and reason != "forced":
                await asyncio.to_thread(self._store.release_refresh, account.id, self.owner)
                self.schedule(account.id, not_before=time.time() + MIN_REFRESH_INTERVAL)
                return account
        if not stored.refresh_token:
            await asyncio.to_thread(self._store.release_refresh, account.id, self.owner)
            raise OAuthError(0, "no_refresh_token", f"account {account.id} has no refresh token")
        logger.info("account %s: refreshing tokens (%s)", account.id, reason)
        try:
            try:
                proxy = self._route(account)
            except UpstreamError as exc:  # its proxy is down: a temporary failure, retried later
                raise OAuthError(0, exc.code, exc.message) from None
            tokens = await oauth.refresh(self._transport, self._config.current, stored.refresh_token, proxy)
        except OAuthError as exc:
            await self._failed(account, exc, claim.interrupted_at)
            raise
        await self._commit(account, tokens)
        return account

    async def _commit(self, account: Account, tokens: TokenSet) -> None:
        """The successor tokens, durable before anything uses them."""
        values: dict[str, Any] = {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
                                  "id_token": tokens.id_token or account.id_token}  # fmt: skip
        try:
            claims = parse_access_token(tokens.access_token)
            values.update(expires_at=claims.expires_at, plan=claims.plan or account.plan, email=claims.email or account.email)
        except InvalidToken as exc:
            logger.error("account %s: the refreshed access token is unreadable (%s)", account.id, exc)
            values["expires_at"] = None
        state: dict[str, Any] = {"refresh_error": None}
        if account.status == "expired" or account.id in self._retry_at:
            state.update(status="active", cooldown_until=None, last_error=None)
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                await asyncio.to_thread(self._store.commit_tokens, account.id, values, state)
                self._unsaved.discard(account.id)
                break
            except Exception:
                if attempt + 1 == COMMIT_ATTEMPTS:
                    # The old refresh token is dead; the new one must at least live on in memory.
                    logger.critical("account %s: the refreshed tokens could NOT be saved; they live only in this "
                                    "process until a later refresh saves its successor", account.id, exc_info=True)  # fmt: skip
                    self._unsaved.add(account.id)
                    break
                await asyncio.sleep(0.2 * (attempt + 1))
        self._pool.committed(account, {**values, **state})
        self._failures.pop(account.id, None)
        self._retry_at.pop(account.id, None)
        logger.info("account %s: tokens refreshed, valid until %s", account.id, time.ctime(values["expires_at"] or 0))
        self.schedule(account.id, not_before=time.time() + MIN_REFRESH_INTERVAL)

    async def _failed(self, account: Account, exc: OAuthError, interrupted_at: float | None) -> None:
        now = time.time()
        if exc.permanent:
            message = f"refresh failed permanently: {exc.code}: {exc.message}"
            if interrupted_at and exc.code == "refresh_token_reused":
                message = (f"the refresh started {time.ctime(interrupted_at)} was interrupted after the server had already "
                           "rotated the refresh token; its successor was lost with the process. Log in again.")  # fmt: skip
            if exc.deactivated:
                status = "banned"
            elif account.is_expired(now):
                status = "expired"
            else:
                status = account.status  # its access token still works: serve until it expires
            logger.error("account %s: %s (status %s)", account.id, message, status)
            await self._release(account, status=status, refresh_error=message[:500], last_error=message[:500])
            self._failures.pop(account.id, None)
            self._retry_at.pop(account.id, None)
            return
        failures = self._failures[account.id] = self._failures.get(account.id, 0) + 1
        auth = self._config.current.auth
        base, cap = auth.refresh_retry_base_seconds, auth.refresh_retry_max_seconds
        delay = min(cap, base * 3 ** (failures - 1)) * random.uniform(0.7, 1.3)
        retry_at = self._retry_at[account.id] = now + delay
        logger.warning("account %s: token refresh failed (%s); attempt %d, retrying in %.1fs", account.id, exc, failures, delay)
        message = f"token refresh failed: {exc.code}: {exc.message}"[:500]
        if account.is_expired(now, margin=USE_MARGIN):  # it cannot serve until the retry works
            await self._release(account, status="cooldown", cooldown_until=retry_at, last_error=message)
        else:
            await self._release(account, last_error=message)
        self.schedule(account.id, at=retry_at)

    async def _release(self, account: Account, **state: Any) -> None:
        """Clear our marker and record why, in one commit; then the same state in memory."""
        await asyncio.to_thread(self._store.release_refresh, account.id, self.owner, state)
        self._pool.committed(account, state)
