"""Token minting and checking for the fake backend.

Access and ID tokens are real JWTs (HS256, fixed fake secret) carrying the claims of real ones
(the account, plan and user under ``https://api.openai.com/auth``, the email under
``…/profile``), so the proxy's unverified claim parsing works on them unchanged while the
fake itself can still tell a forged or expired token from a good one. Refresh tokens and the
opaque ``encrypted_content`` blobs are HMAC-signed strings: self-describing, so a fake started as
a subprocess accepts tokens minted in the test process without any shared registry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

FAKE_SECRET = b"codex-proxy-fake-backend-secret-not-for-production"
CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
ISSUER = "https://auth.openai.com"
AUTH_CLAIM = "https://api.openai.com/auth"
PROFILE_CLAIM = "https://api.openai.com/profile"
REFRESH_PREFIX = "oaistb_rt_"
BLOB_PREFIX = "gAAAAAB"  # what Fernet tokens (the real encrypted_content) start with


class TokenInvalid(Exception):
    """Signature, shape or claims are wrong: the backend answers ``{"detail":"Unauthorized"}``."""


class TokenExpired(Exception):
    """The JWT verified but its ``exp`` has passed: the backend answers ``token_expired``."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a token speaks for; carried from authorize code to tokens to refreshed tokens."""

    account_id: str
    plan: str = "plus"
    email: str | None = None
    user_id: str | None = None

    def resolved_email(self) -> str:
        return self.email or f"{self.account_id}@example.com"

    def resolved_user_id(self) -> str:
        return self.user_id or f"user-{self.account_id}"

    def auth_claim(self) -> dict[str, str]:
        """The ``https://api.openai.com/auth`` claims access and id tokens share."""
        user = self.resolved_user_id()
        return {"chatgpt_account_id": self.account_id, "chatgpt_plan_type": self.plan, "chatgpt_user_id": user, "user_id": user}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: bytes) -> str:
    return _b64(hmac.new(FAKE_SECRET, payload, hashlib.sha256).digest()[:18])


def _expiry(expires_in: float, exp: int | float | None) -> tuple[int, int]:
    now = int(time.time())
    return now, int(exp) if exp is not None else now + int(expires_in)


def mint_access_token(
    account_id: str = "acc-1",
    plan: str = "plus",
    email: str | None = "a@example.com",
    user_id: str | None = None,
    expires_in: float = 3600,
    exp: int | float | None = None,
) -> str:
    """A signed access token the fake accepts (``exp`` in the past makes an expired one)."""
    ident = Identity(account_id, plan, email, user_id)
    iat, expiry = _expiry(expires_in, exp)
    claims = {
        "aud": ["https://api.openai.com/v1"],
        "client_id": CLIENT_ID,
        "exp": expiry,
        "iat": iat,
        "iss": ISSUER,
        "jti": secrets.token_hex(8),
        "nbf": iat,
        "scp": ["openid", "profile", "email", "offline_access"],
        "sub": f"auth0|{ident.resolved_user_id()}",
        AUTH_CLAIM: ident.auth_claim(),
        PROFILE_CLAIM: {"email": ident.resolved_email(), "email_verified": True},
    }
    return jwt.encode(claims, FAKE_SECRET, algorithm="HS256")


def mint_id_token(
    account_id: str = "acc-1",
    plan: str = "plus",
    email: str | None = "a@example.com",
    user_id: str | None = None,
    expires_in: float = 3600,
    exp: int | float | None = None,
) -> str:
    """An OIDC id_token with the top-level and ``/auth`` claims ChatMock and CLIProxyAPI read."""
    ident = Identity(account_id, plan, email, user_id)
    iat, expiry = _expiry(expires_in, exp)
    claims = {
        "aud": [CLIENT_ID],
        "auth_provider": "password",
        "email": ident.resolved_email(),
        "email_verified": True,
        "exp": expiry,
        "iat": iat,
        "iss": ISSUER,
        "sid": secrets.token_hex(8),
        "sub": f"auth0|{ident.resolved_user_id()}",
        AUTH_CLAIM: {
            **ident.auth_claim(),
            "organizations": [
                {"id": f"org-{account_id}", "is_default": True, "role": "owner", "title": "Personal"}
            ],
            "groups": [],
            "chatgpt_subscription_active_start": None,
            "chatgpt_subscription_active_until": None,
            "chatgpt_subscription_last_checked": None,
        },
    }
    return jwt.encode(claims, FAKE_SECRET, algorithm="HS256")


@dataclass(frozen=True, slots=True)
class AccessClaims:
    account_id: str
    plan: str
    user_id: str | None
    email: str | None
    exp: float


_VERIFIED: dict[str, AccessClaims] = {}


def verify_access_token(token: str, now: float | None = None) -> AccessClaims:
    """Check signature and claims (cached per token string: the hot path sees the same few)."""
    claims = _VERIFIED.get(token)
    if claims is None:
        try:
            payload = jwt.decode(
                token, FAKE_SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_aud": False}
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from None
        auth = payload.get(AUTH_CLAIM)
        exp = payload.get("exp")
        if not isinstance(auth, dict) or not auth.get("chatgpt_account_id") or not isinstance(exp, (int, float)):
            raise TokenInvalid("missing claims")
        profile = payload.get(PROFILE_CLAIM) or {}
        claims = AccessClaims(
            account_id=str(auth["chatgpt_account_id"]),
            plan=str(auth.get("chatgpt_plan_type") or "free"),
            user_id=auth.get("chatgpt_user_id") or auth.get("user_id"),
            email=profile.get("email"),
            exp=float(exp),
        )
        if len(_VERIFIED) > 50_000:
            _VERIFIED.clear()
        _VERIFIED[token] = claims
    if claims.exp <= (time.time() if now is None else now):
        raise TokenExpired()
    return claims


# --- refresh tokens -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefreshInfo:
    identity: Identity
    family: str  # every rotation of one login shares it (for optional family revocation)
    token_id: str


def mint_refresh_token(
    account_id: str = "acc-1",
    plan: str = "plus",
    email: str | None = None,
    user_id: str | None = None,
    family: str | None = None,
) -> str:
    """A one-time refresh token any fake instance redeems (import of a refresh-token-only account)."""
    body = {
        "a": account_id,
        "p": plan,
        "e": email,
        "u": user_id,
        "f": family or secrets.token_hex(6),
        "n": secrets.token_hex(8),
    }
    raw = orjson.dumps(body)
    return f"{REFRESH_PREFIX}{_b64(raw)}.{_sign(raw)}"


def parse_refresh_token(token: str) -> RefreshInfo | None:
    """The identity inside a fake refresh token, or None when it is not one we signed."""
    if not isinstance(token, str) or not token.startswith(REFRESH_PREFIX):
        return None
    try:
        body_b64, sig = token[len(REFRESH_PREFIX) :].rsplit(".", 1)
        raw = _unb64(body_b64)
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(sig, _sign(raw)):
        return None
    try:
        body = orjson.loads(raw)
        ident = Identity(str(body["a"]), str(body.get("p") or "plus"), body.get("e"), body.get("u"))
        return RefreshInfo(ident, str(body["f"]), str(body["n"]))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


# --- opaque blobs (reasoning encrypted_content, compaction items) ---------------------------------


def seal_blob(account_id: str, kind: str) -> str:
    """An opaque Fernet-looking string bound to one account, like real ``encrypted_content``."""
    raw = orjson.dumps({"a": account_id, "k": kind, "n": secrets.token_hex(12)})
    return f"{BLOB_PREFIX}{_b64(raw)}.{_sign(raw)}"


def blob_account(blob: Any) -> str | None:
    """The account a blob was sealed for; None when the string is not one of ours (left alone)."""
    if not isinstance(blob, str) or not blob.startswith(BLOB_PREFIX):
        return None
    try:
        body_b64, sig = blob[len(BLOB_PREFIX) :].rsplit(".", 1)
        raw = _unb64(body_b64)
        if not hmac.compare_digest(sig, _sign(raw)):
            return None
        return str(orjson.loads(raw)["a"])
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        return None
