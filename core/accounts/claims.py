"""Reading the ChatGPT access token's JWT claims (never verified: we are not its audience)."""

from __future__ import annotations

from dataclasses import dataclass

import jwt

AUTH_CLAIM = "https://api.openai.com/auth"
PROFILE_CLAIM = "https://api.openai.com/profile"


class InvalidToken(ValueError):
    """The string is not a ChatGPT access token we can use."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    chatgpt_account_id: str
    chatgpt_user_id: str | None
    plan: str | None
    email: str | None
    expires_at: float | None  # unix seconds; None means "treat as expired"


def parse_access_token(token: str) -> TokenClaims:
    try:
        payload = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"not a JWT access token ({exc})") from None
    auth = payload.get(AUTH_CLAIM) or {}
    profile = payload.get(PROFILE_CLAIM) or {}
    account_id = auth.get("chatgpt_account_id")
    if not isinstance(account_id, str) or not account_id:
        raise InvalidToken("access token has no chatgpt_account_id claim")
    exp = payload.get("exp")
    return TokenClaims(
        chatgpt_account_id=account_id,
        chatgpt_user_id=auth.get("chatgpt_user_id") or auth.get("user_id"),
        plan=auth.get("chatgpt_plan_type") or profile.get("chatgpt_plan_type"),
        email=profile.get("email") or payload.get("email"),
        expires_at=float(exp) if isinstance(exp, (int, float)) else None,
    )
