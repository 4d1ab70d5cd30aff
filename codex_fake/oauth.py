"""The fake auth.openai.com: PKCE authorize, token grants with rotating refresh tokens, device code.

Authorize logs in immediately (no browser): the identity is the
one-shot ``next_login`` knob, else ``login_hint`` (an account id), else ``default_login``.
Refresh tokens are single-use; reuse and unknown tokens fail with the codes codex-rs knows.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from aiohttp import web

from codex_fake.host import Host
from codex_fake.tokens import (
    CLIENT_ID,
    Identity,
    RefreshInfo,
    mint_access_token,
    mint_id_token,
    mint_refresh_token,
    parse_refresh_token,
)

REAL_REDIRECT = "http://localhost:1455/auth/callback"
REAL_DEVICE_REDIRECT = "https://auth.openai.com/deviceauth/callback"
SCOPE = "openid profile email offline_access"
CODE_TTL = 600


def s256(verifier: str) -> str:
    """PKCE S256 challenge: base64url(sha256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def oauth_error(status: int, error: str, description: str) -> web.Response:
    body = {"error": error, "error_description": description}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def refresh_failure(code: str, message: str, status: int = 401) -> web.Response:
    body = {"error": {"code": code, "message": message, "type": "invalid_request_error", "param": None}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


@dataclass(slots=True)
class AuthCode:
    challenge: str
    redirect_uri: str  # "" for device-flow codes: either deviceauth callback is accepted
    identity: Identity
    expires_at: float


@dataclass(slots=True)
class DeviceAuth:
    device_auth_id: str
    user_code: str
    identity: Identity
    polls: int = 0
    approved: bool = False


class OAuthServer:
    """OAuth state and routes of one fake (codes, spent refresh tokens, pending device logins)."""

    def __init__(self, fake: Host) -> None:
        self.fake = fake
        self.reset()

    def reset(self) -> None:
        self.codes: dict[str, AuthCode] = {}
        self.spent: dict[str, float] = {}  # refresh token id -> when it was first exchanged
        self.last_spent: dict[str, str] = {}  # family -> its most recently spent token id
        self.revoked_families: set[str] = set()
        self.devices: dict[str, DeviceAuth] = {}

    def register(self, app: web.Application) -> None:
        app.router.add_get("/oauth/authorize", self.authorize)
        app.router.add_post("/oauth/token", self.token)
        app.router.add_post("/api/accounts/deviceauth/usercode", self.device_usercode)
        app.router.add_post("/api/accounts/deviceauth/token", self.device_token)
        app.router.add_get("/codex/device", self.device_page)
        app.router.add_post("/codex/device", self.device_page)

    # -- identities --------------------------------------------------------------------------------

    def _login_identity(self, hint: str | None = None) -> Identity:
        cfg = self.fake.state.config
        spec = cfg.next_login
        if spec is not None:
            cfg.next_login = None
        elif hint:
            spec = {"account_id": hint, "plan": cfg.default_login.get("plan", "plus")}
        else:
            spec = cfg.default_login
        return Identity(
            str(spec.get("account_id") or spec.get("account") or "acc-oauth-1"),
            str(spec.get("plan") or "plus"),
            spec.get("email"),
            spec.get("user_id"),
        )

    def _redirect_allowed(self, uri: str) -> bool:
        if self.fake.state.config.strict_redirect_uri:
            return uri == REAL_REDIRECT
        parts = urlsplit(uri)
        return parts.scheme in ("http", "https") and parts.hostname in ("localhost", "127.0.0.1", "::1")

    def _device_redirects(self) -> set[str]:
        ours = f"{self.fake.base_url}/deviceauth/callback" if self.fake.base_url else REAL_DEVICE_REDIRECT
        return {ours, REAL_DEVICE_REDIRECT}

    def _issue(self, identity: Identity, family: str | None = None) -> dict[str, Any]:
        ttl = self.fake.state.config.access_token_ttl
        args = (identity.account_id, identity.plan, identity.resolved_email(), identity.resolved_user_id())
        return {
            "id_token": mint_id_token(*args, expires_in=ttl),
            "access_token": mint_access_token(*args, expires_in=ttl),
            "refresh_token": mint_refresh_token(*args, family=family),
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": SCOPE,
        }

    # -- browser PKCE ------------------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.Response:
        self.fake.record(request, b"", None, None)
        q = request.query
        if q.get("response_type") != "code":
            return oauth_error(400, "unsupported_response_type", "response_type must be 'code'")
        if q.get("client_id") != CLIENT_ID:
            return oauth_error(400, "invalid_client", "Unknown client_id")
        redirect = q.get("redirect_uri")
        if not redirect or not self._redirect_allowed(redirect):
            return oauth_error(400, "invalid_request", "redirect_uri is not allowed for this client")
        if not q.get("code_challenge"):
            return oauth_error(400, "invalid_request", "code_challenge is required")
        if q.get("code_challenge_method") != "S256":
            return oauth_error(400, "invalid_request", "code_challenge_method must be S256")
        if not q.get("state"):
            return oauth_error(400, "invalid_request", "state is required")
        code = f"ac_{secrets.token_urlsafe(24)}"
        identity = self._login_identity(q.get("login_hint"))
        self.codes[code] = AuthCode(q["code_challenge"], redirect, identity, time.time() + CODE_TTL)
        sep = "&" if "?" in redirect else "?"
        raise web.HTTPFound(f"{redirect}{sep}{urlencode({'code': code, 'state': q['state']})}")

    # -- token endpoint ----------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        raw = await request.read()
        form = parse_body(raw, request.content_type)
        state = self.fake.state
        grant = form.get("grant_type")
        info = parse_refresh_token(form.get("refresh_token", "")) if grant == "refresh_token" else None
        account = info.identity.account_id if info else None
        self.fake.record(request, raw, form, account)
        if grant == "refresh_token":
            state.refreshes[account] += 1
        delay = state.config.token_delay_ms / 1000
        acts_first = state.config.token_delay_phase == "after"
        if delay and not acts_first:
            await asyncio.sleep(delay)  # a client that leaves now cancels the grant: nothing happened
        answer = self._grant(grant, form, info)
        if delay and acts_first:
            await asyncio.sleep(delay)  # the grant is done (an RT spent); only the answer is late
        return answer

    def _grant(self, grant: str | None, form: dict[str, str], info: RefreshInfo | None) -> web.Response:
        if form.get("client_id") != CLIENT_ID:
            return oauth_error(401, "invalid_client", "Unknown or missing client_id")
        if grant == "authorization_code":
            return self._exchange_code(form)
        if grant == "refresh_token":
            return self._refresh(form, info)
        return oauth_error(400, "unsupported_grant_type", f"Unsupported grant_type: {grant}")

    def _exchange_code(self, form: dict[str, str]) -> web.Response:
        code = self.codes.get(form.get("code", ""))
        if code is None or code.expires_at < time.time():
            return oauth_error(400, "invalid_grant", "Invalid or expired authorization code")
        allowed = {code.redirect_uri} if code.redirect_uri else self._device_redirects()
        if form.get("redirect_uri") not in allowed:
            return oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request")
        verifier = form.get("code_verifier", "")
        if not verifier or s256(verifier) != code.challenge:
            return oauth_error(400, "invalid_grant", "code_verifier does not match the code_challenge")
        del self.codes[form["code"]]
        return web.Response(body=orjson.dumps(self._issue(code.identity)), content_type="application/json")

    def _reuse_allowed(self, info: RefreshInfo) -> bool:
        """Auth0's rotation overlap: only the family's most recently spent token, and only within
        the interval counted from its first use, may be exchanged again (for a fresh token set)."""
        interval = self.fake.state.config.refresh_reuse_interval_seconds
        if not interval or self.last_spent.get(info.family) != info.token_id:
            return False
        return time.time() - self.spent[info.token_id] <= float(interval)

    def _refresh(self, form: dict[str, str], info: RefreshInfo | None) -> web.Response:
        state = self.fake.state
        cfg = state.config
        if cfg.refresh_fault:
            return canned(cfg.refresh_fault)
        account = info.identity.account_id if info else None
        fault = state.take_fault(account, frozenset({"refresh_error"}))
        if fault is not None:
            return canned(fault["refresh_error"])
        if info is None or info.family in self.revoked_families:
            return refresh_failure(
                "refresh_token_invalidated", "Your refresh token has been invalidated. Please try signing in again."
            )
        if info.token_id in self.spent and not self._reuse_allowed(info):
            if cfg.refresh_reuse_revokes_family:
                self.revoked_families.add(info.family)
            return refresh_failure(
                "refresh_token_reused",
                "Your refresh token has already been used to generate a new access token. Please try signing in again.",
            )
        identity = info.identity
        usage = state.usage.get(identity.account_id)
        if usage is not None and usage.plan_type:
            identity = Identity(identity.account_id, usage.plan_type, identity.email, identity.user_id)
        tokens = self._issue(identity, family=info.family)
        omit = set(cfg.refresh_omit or ())
        if "refresh_token" not in omit and info.token_id not in self.spent:
            # Rotation: the presented token is spent, and the newest spent one of its family.
            self.spent[info.token_id] = time.time()
            self.last_spent[info.family] = info.token_id
        for key in omit:
            tokens.pop(key, None)
        return web.Response(body=orjson.dumps(tokens), content_type="application/json")

    # -- device code -------------------------------------------------------------------------------

    async def device_usercode(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = parse_body(raw, request.content_type)
        self.fake.record(request, raw, body, None)
        if body.get("client_id") != CLIENT_ID:
            return oauth_error(400, "invalid_client", "Unknown or missing client_id")
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        user_code = "".join(secrets.choice(letters) for _ in range(4)) + "-" + f"{secrets.randbelow(10000):04d}"
        device = DeviceAuth(f"deviceauth_{secrets.token_hex(12)}", user_code, self._login_identity())
        self.devices[device.device_auth_id] = device
        body_out = {"device_auth_id": device.device_auth_id, "user_code": user_code, "interval": "1", "expires_in": 900}
        return web.Response(body=orjson.dumps(body_out), content_type="application/json")

    async def device_token(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = parse_body(raw, request.content_type)
        self.fake.record(request, raw, body, None)
        device = self.devices.get(body.get("device_auth_id", ""))
        if device is None or device.user_code != body.get("user_code"):
            return refresh_failure("deviceauth_not_found", "Unknown device authorization", status=404)
        device.polls += 1
        auto = self.fake.state.config.device_auto_approve_after
        if auto is not None and device.polls > int(auto):
            device.approved = True
        if not device.approved:
            return refresh_failure("deviceauth_authorization_pending", "Authorization is pending", status=403)
        del self.devices[device.device_auth_id]
        verifier = secrets.token_urlsafe(64)
        challenge = s256(verifier)
        code = f"ac_{secrets.token_urlsafe(24)}"
        self.codes[code] = AuthCode(challenge, "", device.identity, time.time() + CODE_TTL)
        out = {"authorization_code": code, "code_verifier": verifier, "code_challenge": challenge}
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    async def device_page(self, request: web.Request) -> web.Response:
        """The page a user opens to type the code (demo mode); submitting it approves the login."""
        message = ""
        if request.method == "POST":
            code = str((await request.post()).get("user_code", "")).strip().upper()
            message = "<p>Approved. You can close this window.</p>" if self.approve(code) else "<p>Unknown code.</p>"
        page = (
            "<!DOCTYPE html><html><head><title>Fake Codex device login</title></head><body>"
            "<h1>Enter the code shown in your terminal</h1>"
            '<form method="post"><input name="user_code" placeholder="ABCD-1234" autofocus>'
            f'<button type="submit">Continue</button></form>{message}</body></html>'
        )
        return web.Response(text=page, content_type="text/html")

    def approve(self, user_code: str) -> bool:
        """The user typed the code in the browser and consented."""
        for device in self.devices.values():
            if device.user_code == user_code:
                device.approved = True
                return True
        return False


def canned(spec: dict[str, Any]) -> web.Response:
    """A scripted failure answer: ``{"status", "body", "headers"}``."""
    status = int(spec.get("status", 500))
    body = spec.get("body")
    if body is None:
        body = {"error": {"code": "server_error", "message": "The server had an internal error"}}
    headers = dict(spec.get("headers") or {})
    if isinstance(body, (dict, list)):
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)
    return web.Response(status=status, text=str(body), headers=headers)


def parse_body(raw: bytes, content_type: str) -> dict[str, str]:
    """Form-encoded or JSON token requests (codex-proxy sends forms, codex-rs JSON)."""
    if not raw:
        return {}
    if "json" in content_type or raw.lstrip().startswith(b"{"):
        try:
            data = orjson.loads(raw)
            return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}
        except orjson.JSONDecodeError:
            return {}
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
