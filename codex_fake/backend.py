"""The fake ChatGPT Codex backend: an aiohttp app serving ``/backend-api`` like chatgpt.com does.

:class:`FakeCodex` owns the app, its state and the control methods the tests call. The SSE path
is the hot one for the benchmark: events are pre-built dicts serialised with orjson and written
one chunk each, with no logging and no per-event allocation beyond the frame itself.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from codex_fake import control, oauth, ws
from codex_fake.catalog import catalog
from codex_fake.faults import answered_by_cloudflare, token_expired_401, usage_limit_429
from codex_fake.host import Caller
from codex_fake.scenarios import TINY_PNG_B64, TurnKnobs, TurnRequest
from codex_fake.state import RESPONSE_FAULT_KEYS, FakeState
from codex_fake.tokens import TokenExpired, TokenInvalid, seal_blob, verify_access_token
from codex_fake.turn import Turn
from codex_fake.validation import (
    ApiError,
    check_compact_body,
    check_responses_body,
    detail,
)
from codex_fake.wire import (
    DISCONNECTS,
    error_response,
    http_error_of,
    pump,
    request_id,
    sse_frame,
)

API = "/backend-api"


class FakeCodex:
    """An offline Codex backend + OAuth server on the current event loop, driven by the tests."""

    def __init__(self, ttfb_ms: float = 0, events: int | None = None, event_delay_ms: float = 0, **options: Any) -> None:
        self.state = FakeState({"ttfb_ms": ttfb_ms, "events": events, "event_delay_ms": event_delay_ms, **options})
        self.oauth = oauth.OAuthServer(self)
        self.sockets: set[ws.Socket] = set()  # open WebSockets
        self.base_url: str | None = None
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    # -- lifecycle ---------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=512 * 1024 * 1024)
        r = app.router
        r.add_post(f"{API}/codex/responses", self._responses)
        r.add_get(f"{API}/codex/responses", self._websocket)
        r.add_post(f"{API}/codex/responses/compact", self._compact)
        r.add_get(f"{API}/codex/models", self._models)
        r.add_get(f"{API}/wham/accounts/check", self._accounts_check)
        for base in (f"{API}/wham", f"{API}/codex", f"{API}/api/codex", "/api/codex"):
            r.add_get(f"{base}/usage", self._usage)
            r.add_get(f"{base}/rate-limit-reset-credits", self._reset_credits)
            r.add_post(f"{base}/rate-limit-reset-credits/consume", self._consume_credit)
        self.oauth.register(app)
        control.register(app, self)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on the running loop; returns the base URL (``{base}/backend-api`` is the API)."""
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
        await site.start()
        self._runner = runner
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        bound_port = sock.getsockname()[1]
        shown = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # a wildcard is not dialable
        if ":" in shown:
            shown = f"[{shown}]"
        self.base_url = f"http://{shown}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        """Close the listener and every open stream or socket (within half a second)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- control API (synchronous; call on the fake's loop) ----------------------------------------

    def reset(self) -> None:
        """Back to constructor defaults: no scripts, faults, records, counters or OAuth grants."""
        self.state.reset()
        self.oauth.reset()

    def script(self, *scenarios: Any, account: str | None = None) -> None:
        """Queue scenarios; each POST /codex/responses (or WS turn) pops one."""
        self.state.script(scenarios, account)

    def fault(self, account: str, fault: Any, times: int | None = None) -> None:
        """Every request of ``account`` gets this fault (``times`` limits it to the next n)."""
        self.state.fault(account, fault, times)

    def clear_fault(self, account: str) -> None:
        self.state.clear_fault(account)

    def requests(self, path_suffix: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests (oldest first), optionally only paths ending with ``path_suffix``."""
        return self.state.requests(path_suffix)

    def configure(self, **values: Any) -> None:
        """Change knobs (see FakeConfig); unknown names raise ValueError."""
        self.state.configure(**values)

    def refresh_count(self, account: str | None = None) -> int:
        """refresh_token grants seen (successful or not), for one chatgpt account id or all."""
        return self.state.refresh_count(account)

    def set_usage(self, account: str, **values: Any) -> None:
        """What rate-limit headers, WS rate-limit frames and /wham/usage report for ``account``."""
        self.state.set_usage(account, values)

    def approve_device(self, user_code: str) -> bool:
        """Approve a pending device-code login; False when the code is unknown."""
        return self.oauth.approve(user_code)

    def stats(self) -> dict[str, int]:
        """Counters: requests, streams_open, aborted_streams (client went away), completed_streams,
        websockets_open, websocket_upgrades."""
        return self.state.stats.as_dict()

    def drop_websockets(self, account: str | None = None) -> int:
        """Cut the open WebSockets (of ``account``, or all) as a network failure would: no close
        frame. Returns how many were cut."""
        return ws.drop(self.sockets, account)

    # -- shared request plumbing -------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> Caller:
        """Bearer JWT check (401 ``{"detail": "Unauthorized"}`` for a missing or bad token, the
        ``token_expired`` error for an expired one) and the ChatGPT-Account-Id consistency rule."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise detail(401, "Unauthorized")
        try:
            claims = verify_access_token(auth[7:].strip())
        except TokenExpired:
            raise expired_token_error() from None
        except TokenInvalid:
            raise detail(401, "Unauthorized") from None
        header = request.headers.get("ChatGPT-Account-Id")
        if header is not None and header != claims.account_id:
            raise detail(400, "ChatGPT-Account-Id does not match the access token's account")
        usage = self.state.usage.get(claims.account_id)
        plan = usage.plan_type if usage is not None and usage.plan_type else claims.plan
        return Caller(claims.account_id, plan, claims.user_id, claims.email)

    def record(
        self, request: web.Request, raw: bytes, body: Any, account: str | None, method: str | None = None
    ) -> dict[str, Any] | None:
        """Keep what the proxy sent, for ``requests()``; returns the entry so notes can be added."""
        if not self.state.config.record_requests:
            return None
        entry = {
                "method": method or request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
                "raw": raw,
                "account": account,
                "peer": request.remote,  # who connected: the proxy, when the caller used one
                "time": time.time(),
                "notes": [],
            }
        self.state.record(entry)
        return entry

    async def read_json(self, request: web.Request) -> tuple[bytes, Any]:
        raw = await request.read()
        try:
            return raw, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return raw, None

    def response_headers(self, caller: Caller, request: web.Request) -> dict[str, str]:
        headers = self.state.usage_for(caller.account).headers()
        headers["x-codex-turn-state"] = request.headers.get("x-codex-turn-state") or f"ts_{secrets.token_hex(16)}"
        headers["x-models-etag"] = catalog().etag
        headers["x-request-id"] = request_id()
        return headers

    def set_cloudflare_cookies(self, resp: web.StreamResponse, caller: Caller, request: web.Request) -> None:
        """What Cloudflare in front of chatgpt.com sets when the request lacks it: ``__cf_bm`` (bot
        management, a fresh value for 30 minutes) and ``cf_clearance`` (here one per account, for a
        year). Scoped to .chatgpt.com when served as chatgpt.com; elsewhere (loopback) host-only,
        as a cookie for another domain would be refused."""
        if not self.state.config.set_cookies:
            return
        host = request.host.rsplit(":", 1)[0].lower()
        domain = ".chatgpt.com" if host == "chatgpt.com" or host.endswith(".chatgpt.com") else None
        sent = request.cookies
        if "__cf_bm" not in sent:
            resp.set_cookie("__cf_bm", secrets.token_urlsafe(24), path="/", domain=domain, httponly=True, secure=True,
                            max_age=1800, samesite="None")  # fmt: skip
        clearance = f"clear-{caller.account}"
        if sent.get("cf_clearance") != clearance:
            resp.set_cookie("cf_clearance", clearance, path="/", domain=domain, httponly=True, secure=True,
                            max_age=31536000, samesite="None")  # fmt: skip

    def pick_scenario(self, caller: Caller, websocket: bool = False) -> dict[str, Any] | None:
        """Sticky fault, else automatic quota 429, else the scripted queue (fault keeps scripts).
        A turn on an open WebSocket never meets what Cloudflare answers (it waits for an upgrade)."""
        only = (lambda fault: not answered_by_cloudflare(fault)) if websocket else None
        fault = self.state.take_fault(caller.account, RESPONSE_FAULT_KEYS, only)
        if fault is not None:
            return fault
        usage = self.state.usage.get(caller.account)
        if self.state.config.enforce_usage_limits and usage is not None and usage.limit_reached:
            secondary = usage.primary_used < 100
            reset_at = usage.secondary_reset_at if secondary else usage.primary_reset_at
            exhausted = usage_limit_429(
                resets_in=max(1, int(reset_at - time.time())), plan_type=caller.plan, secondary=secondary
            )
            exhausted["http_error"]["headers"].update(usage.headers())
            return exhausted
        return self.state.next_scenario(caller.account)

    def build_turn(self, body: dict[str, Any], checked: Any, caller: Caller, scenario: dict[str, Any] | None,
                   previous_response_id: str | None = None) -> Turn:
        cfg = self.state.config
        include = body.get("include") or []
        key = body.get("prompt_cache_key")
        req = TurnRequest(
            model=checked.model.slug,
            account=caller.account,
            input_tokens=checked.input_tokens,
            cached_tokens=self.state.cached_tokens(caller.account, key, checked.input_tokens),
            user_text=checked.user_text,
            reasoning=body.get("reasoning"),
            include_encrypted=isinstance(include, list) and "reasoning.encrypted_content" in include,
            tools=checked.tools,
            tool_choice=body.get("tool_choice", "auto"),
            parallel_tool_calls=body.get("parallel_tool_calls", True),
            service_tier=body.get("service_tier"),
            text_param=body.get("text"),
            prompt_cache_key=key,
            previous_response_id=previous_response_id,
        )
        knobs = TurnKnobs(cfg.ttfb_ms, cfg.ttft_ms, cfg.event_delay_ms, cfg.events, cfg.stamp_events)
        if scenario is None and checked.image_tool is not None:
            # Offered image generation and nothing scripted: the model uses the tool, as asked.
            tool = checked.image_tool
            scenario = {"image": {"output_format": tool.get("output_format", "png"),
                                  **({"partial": TINY_PNG_B64} if tool.get("partial_images") else {})}}  # fmt: skip
        return Turn(req, scenario, knobs)

    # -- POST /codex/responses (SSE) ---------------------------------------------------------------

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        raw, body = await self.read_json(request)
        try:
            caller, entry = self._admit(request, raw, body)
        except ApiError as err:
            return error_response(err)
        cfg = state.config
        try:
            if body is None:
                raise detail(400, "Invalid JSON in request body")
            checked = check_responses_body(
                body, account=caller.account, plan=caller.plan,
                require_instructions=cfg.require_instructions, system_role=cfg.system_role,
            )  # fmt: skip
        except ApiError as err:
            return error_response(err)
        if checked.notes and entry is not None:
            entry["notes"].extend(checked.notes)
        turn = self.build_turn(body, checked, caller, self.pick_scenario(caller))
        stats = state.stats  # a reset() during the stream must not skew the new counters
        stats.streams_open += 1
        try:
            if turn.ttfb:
                await asyncio.sleep(turn.ttfb)
            headers = self.response_headers(caller, request)
            if turn.http_error is not None:
                stats.completed_streams += 1
                return error_response(http_error_of(turn.http_error), turn.headers)
            if turn.json_body is not None:
                headers.update(turn.headers)
                headers["content-type"] = "application/json"
                stats.completed_streams += 1
                return web.Response(body=orjson.dumps(turn.json_body), headers=headers)
            headers["content-type"] = "text/event-stream"
            headers["cache-control"] = "no-cache"
            headers.update(turn.headers)
            resp = web.StreamResponse(status=200, headers=headers)
            self.set_cloudflare_cookies(resp, caller, request)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            write = resp.write

            async def send(event: dict[str, Any]) -> None:
                await write(sse_frame(event))

            ending = await pump(turn, send)
            if ending is not None and ending.mode != "eof":
                stats.completed_streams += 1
                if request.transport is not None:
                    request.transport.abort()
                return resp
            await resp.write_eof()
            stats.completed_streams += 1
        except (asyncio.CancelledError, *DISCONNECTS):
            stats.aborted_streams += 1
            raise
        finally:
            stats.streams_open -= 1
        return resp

    # -- WS /codex/responses -----------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        return await ws.handle(self, request, self.sockets)

    # -- POST /codex/responses/compact -------------------------------------------------------------

    async def _compact(self, request: web.Request) -> web.Response:
        raw, body = await self.read_json(request)
        try:
            caller, _ = self._admit(request, raw, body)
        except ApiError as err:
            return error_response(err)
        try:
            if body is None:
                raise detail(400, "Invalid JSON in request body")
            checked = check_compact_body(body, account=caller.account, plan=caller.plan)
        except ApiError as err:
            return error_response(err)
        fault = self.state.take_fault(caller.account, frozenset({"http_error"}))
        if fault is not None:
            return error_response(http_error_of(fault["http_error"]))
        kept = [
            {"type": "message", "role": "user", "content": item.get("content")}
            for item in checked.input
            if isinstance(item, dict) and item.get("role") == "user" and item.get("type", "message") == "message"
        ]
        output = [*kept, {"type": "compaction", "encrypted_content": seal_blob(caller.account, "compaction")}]
        headers = self.state.usage_for(caller.account).headers()
        headers["x-request-id"] = request_id()
        headers["content-type"] = "application/json"
        return web.Response(body=orjson.dumps({"output": output}), headers=headers)

    # -- GET endpoints -----------------------------------------------------------------------------

    def _admit(self, request: web.Request, raw: bytes = b"", body: Any = None) -> tuple[Caller, dict[str, Any] | None]:
        """Count and record the request, and say who sent it (``ApiError`` when nobody valid did)."""
        self.state.stats.requests += 1
        try:
            caller = self.authenticate(request)
        except ApiError:
            self.record(request, raw, body, None)
            raise
        return caller, self.record(request, raw, body, caller.account)

    def _get_caller(self, request: web.Request) -> Caller:
        return self._admit(request)[0]

    async def _models(self, request: web.Request) -> web.Response:
        try:
            caller = self._get_caller(request)
        except ApiError as err:
            return error_response(err)
        body, etag = catalog().listing(caller.plan, request.query.get("client_version"))
        headers = {"ETag": etag, "x-request-id": request_id()}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        headers["content-type"] = "application/json"
        return web.Response(body=body, headers=headers)

    async def _usage(self, request: web.Request) -> web.Response:
        try:
            caller = self._get_caller(request)
        except ApiError as err:
            return error_response(err)
        body = self.state.usage_for(caller.account).wham(caller.plan, time.time())
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _accounts_check(self, request: web.Request) -> web.Response:
        """The workspaces the token may use; Codex CLI 0.157+ asks before its first turn
        ("workspace routing discovery") and sends nothing while it fails."""
        try:
            caller = self._get_caller(request)
        except ApiError as err:
            return error_response(err)
        account = {"id": caller.account, "workspace_backend_origin": "NO_CONSTRAINT",
                   "account_routing_override": "NO_CONSTRAINT", "structure": "personal", "plan_type": caller.plan}
        body = {"accounts": [account], "account_ordering": [caller.account], "default_account_id": caller.account}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _reset_credits(self, request: web.Request) -> web.Response:
        try:
            caller = self._get_caller(request)
        except ApiError as err:
            return error_response(err)
        usage = self.state.usage_for(caller.account)
        now = int(time.time())
        credits = [
            {
                "id": f"rlrc_{caller.account}_{i}",
                "status": "available",
                "raw_status": "available",
                "reset_type": "codex_primary",
                "granted_at": now - 86400,
                "expires_at": now + 30 * 86400,
                "redeemed_at": None,
            }
            for i in range(usage.reset_credits)
        ]
        body = {"available_count": usage.reset_credits, "credits": credits}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _consume_credit(self, request: web.Request) -> web.Response:
        raw, body = await self.read_json(request)
        try:
            caller, _ = self._admit(request, raw, body)
        except ApiError as err:
            return error_response(err)
        if not isinstance(body, dict) or not body.get("redeem_request_id"):
            return error_response(detail(400, "redeem_request_id is required"))
        usage = self.state.usage_for(caller.account)
        if usage.reset_credits <= 0:
            return error_response(detail(409, "No rate limit reset credits available"))
        usage.reset_credits -= 1
        usage.primary_used = 0.0
        usage.primary_reset_at = int(time.time() + usage.primary_window_minutes * 60)
        result = {
            "status": "redeemed",
            "redeem_request_id": body["redeem_request_id"],
            "available_count": usage.reset_credits,
        }
        return web.Response(body=orjson.dumps(result), content_type="application/json")


def expired_token_error() -> ApiError:
    """The OpenAI-style 401 for an expired token, with the headers codex-rs reads."""
    spec = token_expired_401()["http_error"]
    return ApiError(401, spec["body"], spec["headers"])
