"""Adding, importing and removing accounts: the one place the store and the pool change together.

Called from the control plane's worker threads (blocking SQLite is fine there). Every change is
committed to SQLite before the pool sees it, so a crash can lose nothing the API confirmed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.accounts.claims import InvalidToken, parse_access_token
from core.accounts.model import Account
from core.accounts.oauth import OAuthError, TokenSet
from core.accounts.pool import AccountPool
from core.store.accounts import AccountStore

Refresher = Callable[[str], TokenSet]  # refresh token → fresh tokens (blocking)
SETTABLE_STATUSES = ("active", "disabled")


class AccountInputError(ValueError):
    """What the caller sent cannot become an account; the message says why."""


@dataclass(slots=True)
class ImportResult:
    added: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "failed": self.failed, "errors": self.errors}


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class AccountService:
    def __init__(self, store: AccountStore, pool: AccountPool, refresher: Refresher) -> None:
        self._store = store
        self._pool = pool
        self._refresher = refresher

    def list(self) -> list[Account]:
        return self._pool.current()

    def add(self, entry: dict[str, Any]) -> tuple[Account, bool]:
        """One account from ``{"token"?, "refreshToken"?, "idToken"?, "label"?}`` (snake_case too).
        Returns the stored account and whether it was new."""
        token = _text(entry.get("token")) or _text(entry.get("accessToken")) or _text(entry.get("access_token"))
        refresh_token = _text(entry.get("refreshToken")) or _text(entry.get("refresh_token"))
        id_token = _text(entry.get("idToken")) or _text(entry.get("id_token"))
        label = _text(entry.get("label"))
        if not token and not refresh_token:
            raise AccountInputError("give 'token' (an access token) or 'refreshToken'")
        if token is None or self._expired(token):
            if refresh_token is None:
                raise AccountInputError("the access token has expired and no refreshToken was given")
            try:
                fresh = self._refresher(refresh_token)
            except OAuthError as exc:
                raise AccountInputError(str(exc)) from None
            token, refresh_token, id_token = fresh.access_token, fresh.refresh_token, fresh.id_token or id_token
        try:
            claims = parse_access_token(token)
        except InvalidToken as exc:
            raise AccountInputError(str(exc)) from None
        account = Account.from_tokens(claims, token, refresh_token, id_token, label)
        created = self._store.upsert(account)  # committed before the pool can hand it out
        self._pool.put(account)
        return account, created

    def import_many(self, entries: Iterable[Any]) -> ImportResult:
        result = ImportResult()
        for index, entry in enumerate(entries):
            try:
                if not isinstance(entry, dict):
                    raise AccountInputError("each account must be an object")
                _, created = self.add(entry)
            except AccountInputError as exc:
                result.failed += 1
                result.errors.append({"index": index, "error": str(exc)})
                continue
            if created:
                result.added += 1
            else:
                result.updated += 1
        return result

    def remove(self, account_ids: Iterable[str]) -> list[str]:
        """Delete accounts (committed first); returns the ids that existed."""
        removed = self._store.delete(list(account_ids))
        self._pool.remove(removed)
        return removed

    def set_status(self, account_ids: Iterable[str], status: str) -> list[str]:
        if status not in SETTABLE_STATUSES:
            raise AccountInputError(f"status must be one of {', '.join(SETTABLE_STATUSES)}")
        return self._pool.set_status(account_ids, status)

    def export(self, minimal: bool = False) -> list[dict[str, Any]]:
        """Accounts in the import format. The full form holds every token (a secret); the minimal
        one only the refresh token and label — enough to move an account, since import redeems it."""
        out = []
        for account in self._store.all():  # what is committed, not a half-updated memory copy
            if minimal:
                if account.refresh_token:
                    out.append({"refreshToken": account.refresh_token, "label": account.label})
                continue
            out.append({
                "token": account.access_token,
                "refreshToken": account.refresh_token,
                "idToken": account.id_token,
                "label": account.label,
                "email": account.email,
                "plan": account.plan,
                "status": account.status,
                "chatgpt_account_id": account.chatgpt_account_id,
            })
        return out

    @staticmethod
    def _expired(token: str) -> bool:
        try:
            expires_at = parse_access_token(token).expires_at
        except InvalidToken:
            return False  # the parse in ``add`` reports what is wrong with it
        return expires_at is not None and expires_at <= time.time()
