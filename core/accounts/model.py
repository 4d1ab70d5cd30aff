"""The account record shared by the store, the pool and the management API."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from core.accounts.claims import TokenClaims
from core.accounts.cookies import CookieJar
from core.accounts.quota import Quota

# active: serves. rate_limited: quota used up (or 402/429) until cooldown_until. cooldown: blocked
# by Cloudflare until cooldown_until. expired: needs a new login. banned: the backend refused the
# account. disabled: switched off by the user.
STATUSES = ("active", "rate_limited", "cooldown", "expired", "banned", "disabled")
WAITING = frozenset({"rate_limited", "cooldown"})  # statuses that end by themselves at cooldown_until
SECRET_FIELDS = frozenset({"access_token", "refresh_token", "id_token", "cookies"})
STATE_FIELDS = frozenset({"status", "cooldown_until", "last_error", "last_used_at", "quota", "refresh_error", "cookies"})


def account_entry_id(chatgpt_account_id: str, chatgpt_user_id: str | None) -> str:
    """Stable id per (workspace, user): team members sharing a workspace stay distinct."""
    digest = hashlib.sha256(f"{chatgpt_account_id}\0{chatgpt_user_id or ''}".encode()).hexdigest()
    return "acct_" + digest[:12]


@dataclass(slots=True)
class Account:
    id: str
    chatgpt_account_id: str
    access_token: str
    status: str = "active"
    label: str | None = None
    email: str | None = None
    chatgpt_user_id: str | None = None
    plan: str | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    expires_at: float | None = None
    added_at: float = 0.0
    updated_at: float = 0.0
    last_used_at: float | None = None
    cooldown_until: float | None = None  # rate_limited / cooldown: not chosen before this time
    last_error: str | None = None
    quota: Quota | None = None  # the last rate-limit snapshot
    refresh_error: str | None = None  # a permanent refresh failure: no more refresh attempts
    cookies: CookieJar = field(default_factory=CookieJar)  # what the backend set for this account

    @classmethod
    def from_tokens(
        cls,
        claims: TokenClaims,
        access_token: str,
        refresh_token: str | None = None,
        id_token: str | None = None,
        label: str | None = None,
    ) -> Account:
        now = time.time()
        return cls(
            id=account_entry_id(claims.chatgpt_account_id, claims.chatgpt_user_id),
            chatgpt_account_id=claims.chatgpt_account_id,
            chatgpt_user_id=claims.chatgpt_user_id,
            plan=claims.plan,
            email=claims.email,
            expires_at=claims.expires_at,
            access_token=access_token,
            refresh_token=refresh_token,
            id_token=id_token,
            label=label,
            added_at=now,
            updated_at=now,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Account:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        raw = values.get("quota")
        values["quota"] = Quota.from_dict(orjson.loads(raw)) if isinstance(raw, (str, bytes)) and raw else None
        values["cookies"] = CookieJar.from_json(values.get("cookies"))
        return cls(**values)

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["quota"] = encode_quota(self.quota)
        row["cookies"] = self.cookies.to_json()
        return row

    def state_row(self) -> dict[str, Any]:
        """The fields the pool changes as it runs (never the tokens)."""
        row = {name: getattr(self, name) for name in STATE_FIELDS}
        row["quota"] = encode_quota(self.quota)
        row["cookies"] = self.cookies.to_json()
        return row

    def adopt(self, other: Account) -> None:
        """Take every stored field of ``other`` (same id), keeping this object's identity."""
        for f in fields(self):
            setattr(self, f.name, getattr(other, f.name))

    def is_expired(self, now: float | None = None, margin: float = 0.0) -> bool:
        return self.expires_at is None or self.expires_at - margin <= (time.time() if now is None else now)

    def public(self) -> dict[str, Any]:
        """What the management API may show: everything but the secrets."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in SECRET_FIELDS}
        row["quota"] = self.quota.to_dict() if self.quota else None
        row["has_refresh_token"] = bool(self.refresh_token)
        row["needs_login"] = self.status == "expired" or bool(self.refresh_error)
        return row


def encode_quota(quota: Quota | None) -> str | None:
    return orjson.dumps(quota.to_dict()).decode() if quota else None
