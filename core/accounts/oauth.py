"""Calls to the OAuth token endpoint (codex-protocol.md §6.3): exchanging a refresh token.

Refresh tokens are single-use, so the caller must persist what comes back before using it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from core.codex.errors import UpstreamError
from core.config import Config
from core.upstream.transport import UpstreamTransport

# Token-endpoint error codes that mean the refresh token will never work again.
PERMANENT_REFRESH_ERRORS = frozenset(
    {"refresh_token_expired", "refresh_token_reused", "refresh_token_invalidated", "invalid_grant", "invalid_token", "access_denied"}
)


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    id_token: str | None


class RefreshError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"token refresh failed ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.permanent = code in PERMANENT_REFRESH_ERRORS or "deactivated" in message.lower()


def _error_code(body: Any) -> tuple[str, str]:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("code") or err.get("type") or ""), str(err.get("message") or "")
        if isinstance(err, str):
            return err, str(body.get("error_description") or err)
        if body.get("code"):
            return str(body["code"]), str(body.get("message") or body["code"])
    return "", ""


async def refresh(transport: UpstreamTransport, cfg: Config, refresh_token: str) -> TokenSet:
    """One refresh-token grant. Keeps the old refresh token when none comes back."""
    url = str(cfg.get("auth.oauth_issuer")).rstrip("/") + "/oauth/token"
    form = {"grant_type": "refresh_token", "client_id": cfg.get("auth.oauth_client_id"), "refresh_token": refresh_token}
    try:
        reply = await transport.request(
            "POST", url, {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            _form(form), timeout=30.0,
        )
    except UpstreamError as exc:
        raise RefreshError(0, "network_error", exc.message) from None
    try:
        body = orjson.loads(reply.body) if reply.body else {}
    except orjson.JSONDecodeError:
        body = {}
    if reply.status != 200 or not isinstance(body, dict) or not body.get("access_token"):
        code, message = _error_code(body)
        raise RefreshError(reply.status, code or "refresh_failed", message or reply.body[:300].decode("utf-8", "replace"))
    return TokenSet(body["access_token"], body.get("refresh_token") or refresh_token, body.get("id_token"))


def _form(fields: dict[str, Any]) -> bytes:
    return urlencode({k: v for k, v in fields.items() if v is not None}).encode()
