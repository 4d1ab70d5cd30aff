"""Adding accounts by logging in: browser PKCE or device code.

* Browser PKCE: ``start_browser`` makes the authorize URL and opens a short-lived callback listener
  on the configured redirect URI (``auth.oauth_redirect_uri``, by default
  ``http://localhost:1455/auth/callback``, the only one the real client id allows). Where the
  browser cannot reach that listener (a remote or Docker proxy), the user pastes the URL the
  browser was sent to, and ``complete`` takes it the same way.
* Device code, as the official client does it: a user code to type at the verification page, then
  a poller on the event loop that exchanges the grant once the user approved.

Called from the control plane's threads; network calls run on the data plane's loop.
"""

from __future__ import annotations

import asyncio
import html
import logging
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from core.accounts import oauth
from core.accounts.oauth import DeviceCode, Endpoints, OAuthError, TokenSet
from core.accounts.service import AccountInputError, AccountService
from core.config import ConfigStore
from core.upstream.transport import UpstreamTransport

T = TypeVar("T")
# Runs a coroutine on the data plane's event loop and waits for its result (Services.run_on_loop).
RunOnLoop = Callable[[Coroutine[Any, Any, T]], T]

logger = logging.getLogger(__name__)

DEVICE_TIMEOUT = 15 * 60.0
FINISHED_KEEP = 3600.0  # how long a finished login can still be asked about


class LoginError(ValueError):
    """The login cannot complete; the message says why."""


@dataclass(slots=True)
class Login:
    """One login attempt, browser or device, and how it ended."""

    id: str
    kind: str  # "browser" | "device"
    expires_at: float
    verifier: str = ""
    redirect_uri: str = ""
    device: DeviceCode | None = None
    status: str = "pending"  # pending | exchanging | completed | failed | expired
    account_id: str | None = None
    error: str | None = None
    finished_at: float = field(default=0.0)

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "status": self.status}
        if self.account_id:
            out["account_id"] = self.account_id
        if self.error:
            out["error"] = self.error
        return out


Page = tuple[int, str]  # (HTTP status, HTML)


def _page(title: str, text: str, status: int = 200) -> Page:
    body = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;max-width:40em;margin:4em auto'><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(text)}</p></body></html>")  # fmt: skip
    return status, body


class CallbackListener:
    """The redirect URI's host:port, served only while browser logins are pending."""

    def __init__(self, login: LoginService, redirect_uri: str) -> None:
        parts = urlsplit(redirect_uri)
        host = parts.hostname or "127.0.0.1"
        path = parts.path or "/"
        self.redirect_uri = redirect_uri

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlsplit(self.path)
                if url.path == path:
                    status, body = login.callback_page(dict(parse_qsl(url.query)))
                else:
                    status, body = _page("Not found", "This listener only takes the OAuth callback.", 404)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # the query holds the code: never log it
                pass

        # Raises OSError when the port is taken; the caller reports it and the paste path remains.
        self._server = ThreadingHTTPServer(("127.0.0.1" if host == "localhost" else host, parts.port or 80), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="oauth-callback", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Handlers run on their own threads, so this may be called from one of them."""
        self._server.shutdown()
        self._server.server_close()


class LoginService:
    """The logins in progress. ``transport`` is asked for at each call: the upstream transport
    exists only once the data plane's loop runs (None before)."""

    def __init__(self, config: ConfigStore, accounts: AccountService, run_on_loop: RunOnLoop[Any],
                 transport: Callable[[], UpstreamTransport | None]) -> None:  # fmt: skip
        self._config = config
        self._accounts = accounts
        self._run_on_loop = run_on_loop
        self._current_transport = transport
        self._lock = threading.Lock()
        self._logins: dict[str, Login] = {}  # browser logins by state, device logins by id
        self._listener: CallbackListener | None = None
        self._pollers: set[asyncio.Task[None]] = set()  # device-code pollers (the loop keeps only weak references)

    # --- browser PKCE ------------------------------------------------------------------------------

    def start_browser(self) -> dict[str, Any]:
        cfg = self._config.current
        endpoints = Endpoints.of(cfg)
        verifier, challenge = oauth.pkce_pair()
        state = secrets.token_urlsafe(32)
        ttl = cfg.auth.login_timeout_seconds
        login = Login(state, "browser", time.time() + ttl, verifier=verifier, redirect_uri=endpoints.redirect_uri)
        listener_error = None
        with self._lock:
            self._prune()
            self._logins[state] = login
            try:
                self._ensure_listener(endpoints.redirect_uri)
            except OSError as exc:
                listener_error = f"could not listen on {endpoints.redirect_uri} ({exc}); paste the redirected URL instead"
                logger.warning("OAuth callback listener: %s", listener_error)
        timer = threading.Timer(ttl + 1, self._expire)
        timer.daemon = True
        timer.start()
        return {
            "auth_url": oauth.authorize_url(endpoints, challenge, state),
            "state": state,
            "redirect_uri": endpoints.redirect_uri,
            "listening": listener_error is None,
            "listener_error": listener_error,
            "expires_in": int(ttl),
            "manual": "If the browser cannot reach the redirect URI, POST the full URL it was sent to to /auth/login/callback as {\"url\": ...}.",
        }

    def _ensure_listener(self, redirect_uri: str) -> None:
        if self._listener is not None and self._listener.redirect_uri == redirect_uri:
            return
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self._listener = CallbackListener(self, redirect_uri)

    def complete(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The redirect's query (``code`` + ``state``, or ``error``): exchange, store the account."""
        state = str(params.get("state") or "")
        with self._lock:
            self._prune()
            login = self._logins.get(state)
            if login is None or login.kind != "browser":
                raise LoginError("Unknown or expired login state; start again at /auth/login.")
            if login.status != "pending":
                raise LoginError(f"This login already {login.status}.")
            login.status = "exchanging"
        try:
            if params.get("error"):
                raise LoginError(f"The login was refused: {params.get('error_description') or params['error']}")
            code = str(params.get("code") or "")
            if not code:
                raise LoginError("The callback URL has no 'code' parameter.")
            tokens = self._run_on_loop(
                oauth.exchange_code(self._transport(), self._config.current, code, login.verifier, login.redirect_uri)
            )
            return self._finish(login, tokens)
        except (LoginError, OAuthError) as exc:
            self._fail(login, str(exc))
            raise LoginError(str(exc)) from None
        finally:
            self._stop_listener_if_idle()

    def complete_url(self, url: str) -> dict[str, Any]:
        """The manual path: the full URL the browser was redirected to."""
        query = urlsplit(url.strip()).query
        if not query:
            raise LoginError("That is not the redirected URL (it has no query string with code and state).")
        return self.complete(dict(parse_qsl(query)))

    def callback_page(self, params: Mapping[str, str]) -> Page:
        try:
            result = self.complete(params)
        except LoginError as exc:
            return _page("Login failed", str(exc), 400)
        account = result["account"]
        who = account.get("email") or account.get("id")
        return _page("Logged in", f"{who} was added to codex-proxy. You can close this window.")

    # --- device code -------------------------------------------------------------------------------

    def start_device(self) -> dict[str, Any]:
        login = self._run_on_loop(self._begin_device(self._transport()))
        assert login.device is not None
        device = login.device
        return {
            "login_id": login.id,
            "user_code": device.user_code,
            "verification_url": device.verification_url,
            "interval": device.interval,
            "expires_in": int(DEVICE_TIMEOUT),
        }

    async def _begin_device(self, transport: UpstreamTransport) -> Login:
        """On the loop: ask for a user code, then leave a poller running there."""
        device = await oauth.device_start(transport, self._config.current)
        login = Login("dev_" + secrets.token_urlsafe(12), "device", time.time() + DEVICE_TIMEOUT, device=device)
        with self._lock:
            self._prune()
            self._logins[login.id] = login
        poller = asyncio.create_task(self._poll(login))
        self._pollers.add(poller)
        poller.add_done_callback(self._pollers.discard)
        return login

    async def _poll(self, login: Login) -> None:
        """On the loop: poll until the user approves (or the code expires), then store the account."""
        assert login.device is not None
        cfg = self._config.current
        try:
            grant = None
            while grant is None:
                if time.time() >= login.expires_at:
                    raise LoginError("The device code expired before it was approved.")
                await asyncio.sleep(login.device.interval)
                grant = await oauth.device_poll(self._transport(), cfg, login.device)
            tokens = await oauth.exchange_code(self._transport(), cfg, grant.authorization_code, grant.code_verifier,
                                               Endpoints.of(cfg).device_redirect_uri)  # fmt: skip
            await asyncio.to_thread(self._finish, login, tokens)
        except (LoginError, OAuthError) as exc:
            self._fail(login, str(exc))

    # --- shared -----------------------------------------------------------------------------------

    def status(self, login_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._prune()
            login = self._logins.get(login_id)
            return login.view() if login else None

    def _transport(self) -> UpstreamTransport:
        transport = self._current_transport()
        if transport is None:
            raise LoginError("the proxy is still starting")
        return transport

    def _finish(self, login: Login, tokens: TokenSet) -> dict[str, Any]:
        try:
            account, created = self._accounts.add(
                {"token": tokens.access_token, "refreshToken": tokens.refresh_token, "idToken": tokens.id_token}
            )
        except AccountInputError as exc:
            raise LoginError(f"The login worked but its token is not usable: {exc}") from None
        with self._lock:
            login.status, login.account_id, login.finished_at = "completed", account.id, time.time()
        logger.warning("login: account %s (%s) %s", account.id, account.email or "?", "added" if created else "updated")
        return {"account": account.public(), "created": created, "login": login.view()}

    def _fail(self, login: Login, error: str) -> None:
        with self._lock:
            login.status, login.error, login.finished_at = "failed", error, time.time()
        logger.warning("login %s failed: %s", login.kind, error)

    def _prune(self) -> None:
        """Expire what timed out and forget what finished long ago (call under the lock)."""
        now = time.time()
        for key, login in list(self._logins.items()):
            if login.status == "pending" and login.expires_at <= now:
                login.status, login.error, login.finished_at = "expired", "The login timed out.", now
            if login.finished_at and now - login.finished_at > FINISHED_KEEP:
                del self._logins[key]

    def _expire(self) -> None:
        with self._lock:
            self._prune()
        self._stop_listener_if_idle()

    def _stop_listener_if_idle(self) -> None:
        with self._lock:
            waiting = any(lg.kind == "browser" and lg.status in ("pending", "exchanging") for lg in self._logins.values())
            listener = None if waiting else self._listener
            if listener is not None:
                self._listener = None
        if listener is not None:
            listener.stop()

    def close(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
