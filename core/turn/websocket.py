"""Turns over the backend's WebSocket (``upstream.transport``), as the official client sends them.

Each account has a pool of open sockets (core/upstream/wspool.py); a turn leases one — the socket
that holds the response it continues, else one its conversation used, else any idle one — or
opens one, and sends one ``response.create`` frame. The backend answers with one JSON event per
text frame: the same events as over SSE, plus ``codex.rate_limits`` (the account's quota, as the
``x-codex-*`` headers carry it over HTTP) and early metadata frames, which are taken here and not
relayed. An ``error`` frame with an HTTP status before any output is that HTTP error (the
pipeline fails over as it does for HTTP); after output it is an in-stream error like SSE's.

When no socket can be had (the upgrade is refused, the connection fails), ``start`` returns None
and the turn goes over SSE. libcurl does not read the body of a refused upgrade, so what the
refusal means for the account (an expired token, a used-up quota, a ban) is left to the HTTP
request, which gets the same answer with its body. An upgrade refused as unsupported turns
WebSockets off for ``UNSUPPORTED_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from core.accounts.model import Account
from core.accounts.quota import event_headers
from core.codex.errors import ROTATE, UpstreamError, classify_http
from core.codex.events import TERMINAL_EVENTS, CodexStreamParser
from core.config import ConfigStore
from core.turn.model import Turn, UpstreamEvent
from core.upstream.tap import Leg, open_leg
from core.upstream.transport import UpstreamTransport, parse_head
from core.upstream.websocket import WebSocketRefused
from core.upstream.wspool import Pooled, SocketPool

logger = logging.getLogger(__name__)

UNSUPPORTED_SECONDS = 600.0
# Upgrade answers that mean "no WebSockets here" rather than "not now" or "not this account" (a
# 404 too, unless empty: that is Cloudflare blocking the path for the account).
_UNSUPPORTED = frozenset({405, 426, 501})
_WS_ONLY = frozenset({"codex.rate_limits", "codex.response.metadata", "response.metadata"})
_MEANS_SSE = frozenset({"websocket_connection_limit_reached"})  # the socket is refused, not the turn

Observe = Callable[[Account, dict[str, str], list[str], str], None]  # (account, headers, set-cookies, url)
FrameFor = Callable[[bool], bytes]  # chained (previous_response_id + new input) or the full turn → the frame


class SocketTurn:
    """One turn on a leased socket, for the pipeline: ``headers``, ``events(parser)``, ``aclose()``."""

    def __init__(self, owner: SocketTurns, pooled: Pooled, account: Account, url: str, reused: bool, chained: bool,
                 leg: Leg | None) -> None:
        self.headers, _ = parse_head(pooled.socket.head)
        self.url = url
        self.reused = reused  # a socket opened for an earlier turn: it may have died since
        self.chained = chained  # sent as a continuation of the response the socket holds
        self.stale = False  # the reused socket was gone before the backend said anything
        self._owner = owner
        self._pooled = pooled
        self._account = account
        self._leg = leg
        self._completed: str | None = None  # the response id, once it completed
        self._closed = False
        self._timed_out = False
        self._watchdog: asyncio.TimerHandle | None = None

    def retry(self, error: UpstreamError) -> str | None:
        """How to try this turn again on the same account after ``error``: "fresh" (a new
        socket, the full history), "sse", or None (it is a real failure)."""
        if self.stale or (self.chained and error.code == "previous_response_not_found"):
            return "fresh"
        if error.code in _MEANS_SSE:
            return "sse"
        return None

    async def events(self, parser: CodexStreamParser) -> AsyncIterator[UpstreamEvent]:
        sock = self._pooled.socket
        leg = self._leg
        heard = False
        self._watch()
        while True:
            message = sock.next_message()
            if message is None:
                if sock.closed:
                    if self._timed_out:
                        timeout = self._owner.stall_seconds()
                        raise self._failed(UpstreamError(504, "upstream_timeout", f"No frame from the upstream WebSocket for {timeout:.0f}s", action=ROTATE))
                    self.stale = self.reused and not heard
                    raise self._failed(UpstreamError(502, "stream_disconnected", f"WebSocket closed before response.completed ({sock.close_reason})", action=ROTATE))
                await sock.wait()
                continue
            heard = True
            if leg is not None:
                leg.data(message + b"\n")
            try:
                data = orjson.loads(message)
            except orjson.JSONDecodeError:
                data = {"type": "error", "error": {"code": "invalid_event", "message": message[:500].decode("utf-8", "replace")}}
                message = orjson.dumps(data)
            if not isinstance(data, dict):
                continue
            kind = data.get("type") or ""
            if kind in _WS_ONLY:
                self._take_metadata(kind, data)
                continue
            if kind == "error" and not parser.produced and isinstance(status := data.get("status") or data.get("status_code"), int):
                raise self._failed(self._http_error(status, data))
            event = UpstreamEvent(kind, data, message)
            event.deltas = parser.feed(kind, data)
            if kind in TERMINAL_EVENTS:
                if kind != "error" and kind != "response.failed":
                    self._completed = parser.response_id
                yield event
                return
            yield event

    def _watch(self) -> None:
        """The stall guard (``stream.idle_timeout_seconds`` without a frame, as for SSE), one timer
        per turn rather than one per wait."""
        sock = self._pooled.socket
        if self._closed or sock.closed:
            return
        timeout = self._owner.stall_seconds()
        quiet = time.monotonic() - sock.last_active
        if quiet >= timeout:
            self._timed_out = True
            sock.close("no frame for too long")
            return
        self._watchdog = asyncio.get_running_loop().call_later(timeout - quiet, self._watch)

    def _take_metadata(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "codex.rate_limits":
            headers = event_headers(data)
        else:
            raw = data.get("headers")
            headers = {str(k).lower(): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        if headers:
            self.headers.update(headers)
            self._owner.observe(self._account, headers, [], self.url)

    def _http_error(self, status: int, data: dict[str, Any]) -> UpstreamError:
        """An ``error`` frame with an HTTP status: the HTTP answer it stands for (codex-rs reads it so)."""
        raw_headers = data.get("headers")
        headers = {str(k).lower(): str(v) for k, v in raw_headers.items()} if isinstance(raw_headers, dict) else {}
        if headers:
            self._owner.observe(self._account, headers, [], self.url)
        error = data.get("error")
        if not isinstance(error, dict) and isinstance(data.get("body"), dict):
            error = data["body"].get("error")
        return classify_http(status, headers, orjson.dumps({"error": error}) if isinstance(error, dict) else b"")

    def _failed(self, error: UpstreamError) -> UpstreamError:
        if self._leg is not None:
            self._leg.end(error.message)
        return error

    async def aclose(self) -> None:
        """Back to the pool after a completed response; otherwise the socket is closed (a
        response still running on it would make it useless, and closing stops the generation)."""
        if self._closed:
            return
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._leg is not None:
            self._leg.end()
        pool = self._owner.pool
        if self._completed is not None and not self._pooled.socket.closed:
            pool.give_back(self._pooled, holds=self._completed)
        else:
            pool.discard(self._pooled, "turn ended early")


class SocketTurns:
    """The WebSocket side of the pipeline: which turns go over a socket, and starting them."""

    def __init__(self, config: ConfigStore, transport: UpstreamTransport, observe: Observe,
                 prefers_websockets: Callable[[str], bool | None]) -> None:
        self._config = config
        self._transport = transport
        self.observe = observe
        self._prefers = prefers_websockets
        self.pool = SocketPool(0, 0, 0)
        self._limits()
        self._unsupported_until = 0.0

    def _limits(self) -> None:
        """The pool's bounds as the settings say now (they may change while the proxy runs)."""
        up = self._config.current.upstream
        pool = self.pool
        pool.idle_per_owner, pool.idle_seconds = up.websockets_per_account, up.websocket_idle_seconds
        pool.max_age_seconds = up.websocket_max_age_minutes * 60

    def stall_seconds(self) -> float:
        return self._config.current.stream.idle_timeout_seconds

    def wanted(self, turn: Turn) -> bool:
        mode = self._config.current.upstream.transport
        if mode == "sse" or time.monotonic() < self._unsupported_until:
            return False
        if mode == "websocket":
            return True
        learned = self._prefers(turn.model.id)  # the backend's own catalogue, once fetched
        return learned if learned is not None else turn.model.prefer_websockets

    async def start(self, account: Account, url: str, conversation: str | None, headers: dict[str, str | None],
                    frame: FrameFor, holding: str | None, proxy: str | None = None, fresh: bool = False) -> SocketTurn | None:
        """Send the turn over a socket of ``account`` to ``url`` (the HTTP address of the turn
        endpoint); None when no socket could be had (use SSE). ``holding``: the response the turn
        continues, if a socket of this account may hold it. ``proxy``: the account's (a new socket
        is opened through it). ``fresh``: a new socket."""
        self._limits()
        pool = self.pool
        owner = _pool_key(account.id, proxy)
        pooled = None
        chained = False
        if not fresh:
            if holding is not None and (pooled := pool.take(owner, holding=holding)) is not None:
                chained = True
            elif (pooled := pool.take(owner, conversation)) is not None:
                pass
        reused = pooled is not None
        if pooled is None:
            opened = await self._open(account, url, headers, proxy)
            if opened is None:
                return None
            pooled = pool.add(owner, opened, conversation)
        payload = frame(chained)
        # Watched as the upgrade request (a GET of the same URL) with this turn's frame as its body,
        # answered 101 with the socket's upgrade headers and this turn's frames, one per line.
        leg = open_leg("GET", url, {k: v for k, v in headers.items() if v is not None}, payload)
        if leg is not None:
            upgrade, _ = parse_head(pooled.socket.head)
            leg.response(101, upgrade)
        try:
            await pooled.socket.send(payload)
        except Exception as exc:  # the socket died while idle: once more on a new one
            pool.discard(pooled, "send failed")
            if leg is not None:
                leg.end(str(exc))
            if not reused:
                return None
            return await self.start(account, url, conversation, headers, frame, None, proxy, fresh=True)
        except BaseException:
            pool.discard(pooled, "cancelled while sending")
            if leg is not None:
                leg.end("cancelled")
            raise
        return SocketTurn(self, pooled, account, url, reused, chained, leg)

    async def _open(self, account: Account, url: str, headers: dict[str, str | None], proxy: str | None) -> Any:
        try:
            sock = await self._transport.open_websocket(url, headers, proxy=proxy)
        except WebSocketRefused as refused:
            answer, set_cookies = parse_head(refused.head)
            self.observe(account, answer, set_cookies, url)
            if refused.status in _UNSUPPORTED or (refused.status == 404 and answer.get("content-length") != "0"):
                self._unsupported_until = time.monotonic() + UNSUPPORTED_SECONDS
                logger.warning("the upstream refused a WebSocket upgrade (HTTP %d); SSE only for %.0f minutes",
                               refused.status, UNSUPPORTED_SECONDS / 60)
            else:
                logger.info("WebSocket upgrade refused for %s (HTTP %d); this turn goes over SSE", account.id, refused.status)
            return None
        except UpstreamError as err:
            logger.info("no WebSocket for %s (%s); this turn goes over SSE", account.id, err.message)
            return None
        answer, set_cookies = parse_head(sock.head)
        self.observe(account, answer, set_cookies, url)
        return sock

    def drop(self, account_id: str) -> None:
        """Close the idle sockets of an account (through whichever proxy)."""
        for owner in self.pool.owners():
            if owner == account_id or owner.startswith(account_id + "\0"):
                self.pool.drop(owner)

    def close(self) -> None:
        self.pool.close()


def _pool_key(account_id: str, proxy: str | None) -> str:
    """Sockets are pooled per account and per the proxy they were opened through: when the
    account's proxy changes, its next turn opens a socket through the new one."""
    return account_id if not proxy else f"{account_id}\0{proxy}"
