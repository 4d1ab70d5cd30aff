"""Calls to the OAuth server (auth.openai.com): PKCE authorize URLs, the code exchange, the
refresh grant and the device-code flow. Every endpoint comes from ``auth.oauth_*`` config, so tests
and the demo aim them at the fake.

Refresh tokens are single-use: whoever calls ``refresh`` must make what comes back durable before
using it (core/accounts/tokens.py).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from core.codex.errors import UpstreamError
from core.settings import Settings
from core.upstream.transport import UpstreamTransport

REFRESH_SCOPE = "openid profile email"
# Token-endpoint error codes that mean the refresh token will never work again.
PERMANENT_REFRESH_ERRORS = frozenset(
    {"refresh_token_expired", "refresh_token_reused", "refresh_token_invalidated", "invalid_grant", "invalid_token", "access_denied"}
)


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    id_token: str | None


class OAuthError(Exception):
    """The OAuth server said no (or could not be reached: status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"OAuth request failed ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def permanent(self) -> bool:
        """The refresh token is dead: retrying cannot help, only a new login."""
        return self.code in PERMANENT_REFRESH_ERRORS or "deactivated" in self.message.lower()

    @property
    def deactivated(self) -> bool:
        return "deactivated" in self.message.lower() or self.code == "account_deactivated"


@dataclass(frozen=True, slots=True)
class Endpoints:
    client_id: str
    authorize: str
    token: str
    redirect_uri: str
    scope: str
    device_code: str
    device_token: str
    device_verification: str
    device_redirect_uri: str

    @classmethod
    def of(cls, cfg: Settings) -> Endpoints:
        auth = cfg.auth
        issuer = auth.oauth_issuer.rstrip("/")
        return cls(
            client_id=auth.oauth_client_id,
            authorize=auth.oauth_authorize_url or issuer + "/oauth/authorize",
            token=auth.oauth_token_url or issuer + "/oauth/token",
            redirect_uri=auth.oauth_redirect_uri,
            scope=auth.oauth_scope,
            device_code=auth.oauth_device_code_url or issuer + "/api/accounts/deviceauth/usercode",
            device_token=auth.oauth_device_token_url or issuer + "/api/accounts/deviceauth/token",
            device_verification=auth.oauth_device_verification_url or issuer + "/codex/device",
            device_redirect_uri=auth.oauth_device_redirect_uri or issuer + "/deviceauth/callback",
        )


# --- browser PKCE -----------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge): 64 random bytes as base64url, like codex-rs."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(64)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(endpoints: Endpoints, challenge: str, state: str) -> str:
    """The authorize URL with the parameters in the official client's order; spaces as %20."""
    params = {
        "response_type": "code",
        "client_id": endpoints.client_id,
        "redirect_uri": endpoints.redirect_uri,
        "scope": endpoints.scope,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "id_token_add_organizations": "true",
        "codex_cli_simplified_flow": "true",
        "state": state,
        "originator": "codex_cli_rs",
    }
    separator = "&" if "?" in endpoints.authorize else "?"
    return endpoints.authorize + separator + urlencode(params, quote_via=quote)


# --- the token endpoint ----------------------------------------------------------------------------


def _error_of(status: int, body: Any, raw: bytes) -> OAuthError:
    code, message = "", ""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code, message = str(err.get("code") or err.get("type") or ""), str(err.get("message") or "")
        elif isinstance(err, str):
            code, message = err, str(body.get("error_description") or err)
        elif body.get("code"):
            code, message = str(body["code"]), str(body.get("message") or body["code"])
    return OAuthError(status, code or "oauth_error", message or raw[:300].decode("utf-8", "replace") or f"HTTP {status}")


async def _post(transport: UpstreamTransport, url: str, body: bytes, content_type: str, timeout: float,
                proxy: str | None = None) -> tuple[int, Any, bytes]:
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    try:
        reply = await transport.request("POST", url, headers, body, timeout=timeout, proxy=proxy)
    except UpstreamError as exc:
        raise OAuthError(0, "network_error", exc.message) from None
    try:
        parsed = orjson.loads(reply.body) if reply.body else None
    except orjson.JSONDecodeError:
        parsed = None
    return reply.status, parsed, reply.body


async def _token_grant(transport: UpstreamTransport, endpoints: Endpoints, form: dict[str, str], timeout: float,
                       proxy: str | None = None) -> dict[str, Any]:
    body = urlencode({k: v for k, v in form.items() if v is not None}).encode()
    status, parsed, raw = await _post(transport, endpoints.token, body, "application/x-www-form-urlencoded", timeout, proxy)
    if status != 200 or not isinstance(parsed, dict) or not parsed.get("access_token"):
        raise _error_of(status, parsed, raw)
    return parsed


async def refresh(transport: UpstreamTransport, cfg: Settings, refresh_token: str, proxy: str | None = None) -> TokenSet:
    """One refresh-token grant (through the account's ``proxy``). Keeps the old refresh token when
    the answer carries no new one."""
    endpoints = Endpoints.of(cfg)
    form = {"grant_type": "refresh_token", "client_id": endpoints.client_id, "refresh_token": refresh_token, "scope": REFRESH_SCOPE}
    body = await _token_grant(transport, endpoints, form, cfg.auth.refresh_timeout_seconds, proxy)
    return TokenSet(body["access_token"], body.get("refresh_token") or refresh_token, body.get("id_token"))


async def exchange_code(transport: UpstreamTransport, cfg: Settings, code: str, verifier: str, redirect_uri: str) -> TokenSet:
    """An authorization code (browser or device flow) for tokens."""
    endpoints = Endpoints.of(cfg)
    form = {"grant_type": "authorization_code", "client_id": endpoints.client_id, "code": code,
            "redirect_uri": redirect_uri, "code_verifier": verifier}  # fmt: skip
    body = await _token_grant(transport, endpoints, form, 30.0)
    return TokenSet(body["access_token"], body.get("refresh_token"), body.get("id_token"))


# --- device code -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceCode:
    device_auth_id: str
    user_code: str
    interval: float
    verification_url: str


@dataclass(frozen=True, slots=True)
class DeviceGrant:
    authorization_code: str
    code_verifier: str


async def device_start(transport: UpstreamTransport, cfg: Settings) -> DeviceCode:
    endpoints = Endpoints.of(cfg)
    status, body, raw = await _post(transport, endpoints.device_code, orjson.dumps({"client_id": endpoints.client_id}),
                                    "application/json", 30.0)  # fmt: skip
    code = (body.get("user_code") or body.get("usercode")) if isinstance(body, dict) else None
    if status != 200 or not code or not body.get("device_auth_id"):
        raise _error_of(status, body, raw)
    try:
        interval = max(1.0, float(body.get("interval") or 5))
    except (TypeError, ValueError):
        interval = 5.0
    return DeviceCode(str(body["device_auth_id"]), str(code), interval, endpoints.device_verification)


async def device_poll(transport: UpstreamTransport, cfg: Settings, device: DeviceCode) -> DeviceGrant | None:
    """One poll: the grant once the user approved, None while pending (403/404)."""
    endpoints = Endpoints.of(cfg)
    payload = orjson.dumps({"device_auth_id": device.device_auth_id, "user_code": device.user_code})
    status, body, raw = await _post(transport, endpoints.device_token, payload, "application/json", 30.0)
    if status in (403, 404):
        return None
    if status != 200 or not isinstance(body, dict) or not body.get("authorization_code") or not body.get("code_verifier"):
        raise _error_of(status, body, raw)
    return DeviceGrant(str(body["authorization_code"]), str(body["code_verifier"]))
