"""Account-scoped reads from the Codex backend: the usage snapshot (``/wham/usage``) and the model
catalogue of an account's plan (``/codex/models``), with the same headers the official client sends."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import quote

import orjson

from core.accounts.model import Account
from core.accounts.oauth import OAuthError
from core.accounts.pool import AccountPool
from core.accounts.proxy_pool import Route
from core.accounts.quota import Quota, parse_usage_body
from core.accounts.tokens import TokenManager
from core.codex.errors import UpstreamError, classify_http
from core.codex.headers import base_headers
from core.config import ConfigStore
from core.upstream.transport import UpstreamTransport

logger = logging.getLogger(__name__)


def cookie_header(account: Account) -> dict[str, str]:
    """The account's own Cloudflare clearance, the one cookie worth replaying: Cloudflare in front
    of chatgpt.com also sets a fresh ``__cf_bm`` on every answer, and sending that back is what
    gets paths blocked (an empty 404)."""
    return {"Cookie": f"cf_clearance={account.cf_clearance}"} if account.cf_clearance else {}


def account_headers(cfg: Any, account: Account) -> dict[str, str]:
    """The official client's headers for ``account``, plus its cookie."""
    return {**base_headers(cfg, account.access_token, account.chatgpt_account_id), **cookie_header(account)}


class AccountBackend:
    def __init__(self, config: ConfigStore, pool: AccountPool, tokens: TokenManager, transport: UpstreamTransport,
                 route: Route) -> None:
        self._config = config
        self._pool = pool
        self._tokens = tokens
        self._transport = transport
        self._route = route  # the account's proxy (core/accounts/proxy_pool.py)
        self._catalog_task: asyncio.Task[None] | None = None
        self._catalogs_wanted = False

    async def _get(self, account: Account, path: str) -> Any:
        account = await self._tokens.ensure_fresh(account)
        cfg = self._config.current
        url = cfg.api.base_url.rstrip("/") + path
        for retry in (True, False):
            sent = account.access_token
            headers = account_headers(cfg, account)
            reply = await self._transport.request("GET", url, headers, timeout=30.0, proxy=self._route(account))
            if reply.status == 401 and retry and account.refresh_token and not account.refresh_error:
                try:
                    await self._tokens.refresh(account.id, stale=sent, reason="upstream 401")
                    continue
                except OAuthError:
                    pass
            break
        if reply.status >= 400:
            error = classify_http(reply.status, reply.headers, reply.body)
            self._pool.apply_error(account, error)
            raise error
        try:
            return orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise UpstreamError(502, "invalid_json", f"{path} answered something that is not JSON") from None

    async def usage(self, account: Account) -> tuple[Quota | None, Any]:
        """The backend's usage body for ``account`` (recorded in the pool) and its parse."""
        body = await self._get(account, "/wham/usage")
        quota = parse_usage_body(body, time.time())
        if quota is not None:
            self._pool.record_quota(account, quota)
        return quota, body

    async def refresh_usage(self, accounts: list[Account], max_age: float = 0.0) -> dict[str, str]:
        """Fetch ``/wham/usage`` (concurrently) for those of ``accounts`` whose snapshot is older
        than ``max_age`` seconds; returns the errors by account id."""
        now = time.time()
        stale = [a for a in accounts if a.quota is None or now - a.quota.observed_at > max_age]
        results = await asyncio.gather(*(self.usage(a) for a in stale), return_exceptions=True)
        return {a.id: str(r) for a, r in zip(stale, results, strict=True) if isinstance(r, Exception)}

    async def models(self, account: Account) -> list[str]:
        version = quote(self._config.current.client.app_version)
        body = await self._get(account, f"/codex/models?client_version={version}")
        models = body.get("models") if isinstance(body, dict) else None
        return [str(m["slug"]) for m in models or [] if isinstance(m, dict) and m.get("slug")]

    # --- plan catalogues ---------------------------------------------------------------------------

    def refresh_catalogs(self) -> None:
        """On the loop: fetch the catalogue of every plan we have accounts on but no fresh list for
        (in the background, one fetch at a time; a call during a run makes it look once more)."""
        if not self._config.current.auth.plan_routing:
            return
        self._catalogs_wanted = True
        if self._catalog_task is None or self._catalog_task.done():
            self._catalog_task = asyncio.get_running_loop().create_task(self._refresh_catalogs())

    async def _refresh_catalogs(self) -> None:
        while self._catalogs_wanted:
            self._catalogs_wanted = False
            accounts = [a for a in self._pool.all() if a.status == "active"]
            for plan in sorted(self._pool.plans.stale(a.plan for a in accounts)):
                account = next(a for a in accounts if a.plan == plan)
                try:
                    slugs = await self.models(account)
                except UpstreamError as exc:
                    logger.warning("could not fetch the model list of plan %s (via %s): %s", plan, account.id, exc)
                    continue
                self._pool.plans.record_catalog(plan, slugs)
                logger.info("plan %s serves %d models", plan, len(slugs))
