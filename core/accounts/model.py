"""The account record shared by the store, the pool and the management API."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.accounts.claims import TokenClaims

STATUSES = ("active", "expired", "rate_limited", "banned", "disabled")
SECRET_FIELDS = frozenset({"access_token", "refresh_token", "id_token"})


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
        return cls(**{k: v for k, v in row.items() if k in names})

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    def is_expired(self, now: float | None = None) -> bool:
        return self.expires_at is None or self.expires_at <= (now or time.time())

    def public(self) -> dict[str, Any]:
        """What the management API may show: everything but the tokens."""
        row = {k: v for k, v in asdict(self).items() if k not in SECRET_FIELDS}
        row["has_refresh_token"] = bool(self.refresh_token)
        return row
