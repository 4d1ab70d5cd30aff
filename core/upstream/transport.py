"""Every upstream call (Codex backend, OAuth server) goes through one :class:`UpstreamTransport`.

It sits on :class:`core.upstream.driver.CurlDriver`: libcurl with TLS impersonation, pooled
handles, no cookie jar (one transport serves every account; callers send the cookies they mean
to). A call may name its own proxy (an account's, core/accounts/proxy_pool.py); when a call
through one fails before an answer, ``proxy_failed`` hears of it so the proxy gets checked.
Closing a stream aborts its transfer at once, so an abandoned turn stops the backend's generation
instead of reading it to the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from curl_cffi.curl import DEFAULT_CACERT

from core.codex.errors import MAX_ERROR_BODY, RETRY_SAME, UpstreamError
from core.settings import Settings
from core.upstream.driver import CurlDriver, Limits, Profile, Transfer, TransferError
from core.upstream.fingerprint import named
from core.upstream.tap import Leg, open_leg


def transport_error(exc: BaseException) -> UpstreamError:
    return UpstreamError(502, "upstream_transport_error", f"error sending request to upstream: {exc}", action=RETRY_SAME)


def _failed(leg: Leg | None, error: UpstreamError) -> UpstreamError:
    """Close a watched call that failed; returns ``error`` for raising."""
    if leg is not None:
        leg.end(error.message)
    return error


def _abandoned(leg: Leg | None) -> None:
    if leg is not None:
        leg.end("cancelled before the upstream answered")


def _parse_headers(head: bytes) -> tuple[dict[str, str], list[str]]:
    """Header lines → a lower-cased dict (repeated names joined with ", ") and the Set-Cookie
    values on their own (joining those would break them)."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for line in head.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        value = value.strip()
        if name in headers:
            headers[name] += ", " + value
        else:
            headers[name] = value
        if name == "set-cookie":
            cookies.append(value)
    return headers, cookies


class UpstreamStream:
    """An open streaming response; iterate ``chunks()`` and always ``aclose()``."""

    __slots__ = ("status", "headers", "set_cookies", "_transfer", "_closed", "_leg")

    def __init__(self, transfer: Transfer, leg: Leg | None = None) -> None:
        self._transfer = transfer
        self.status: int = transfer.status
        self.headers, self.set_cookies = _parse_headers(transfer.head)
        self._closed = False
        self._leg = leg
        if leg is not None:
            leg.response(self.status, self.headers)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: each chunk is everything that came in since the last one."""
        transfer = self._transfer
        leg = self._leg
        while True:
            if transfer.buffer:
                chunk = transfer.take()
                if leg is not None:
                    leg.data(chunk)
                yield chunk
            elif transfer.done:
                if transfer.error is not None and not self._closed:
                    raise _failed(leg, transport_error(transfer.error))
                return
            else:
                await transfer.wait()

    async def read(self, limit: int = MAX_ERROR_BODY) -> bytes:
        parts: list[bytes] = []
        size = 0
        async with contextlib.aclosing(self.chunks()) as chunks:
            async for chunk in chunks:
                parts.append(chunk)
                size += len(chunk)
                if size >= limit:
                    break
        await self.aclose()
        return b"".join(parts)[:limit]

    async def aclose(self) -> None:
        """Abort the transfer if it still runs (never waits for the upstream)."""
        if self._closed:
            return
        self._closed = True
        if self._leg is not None:
            self._leg.end()
        self._transfer.abort()


@dataclass(slots=True)
class SimpleResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class UpstreamTransport:
    def __init__(self, cfg: Settings) -> None:
        self._cfg = cfg
        # tls.impersonate names a recorded client (codex_cli) or a curl_cffi browser target.
        self._profile = Profile(impersonate=cfg.tls.impersonate or None, http11=cfg.tls.force_http11,
                                fingerprint=named(cfg.tls.impersonate))
        self._driver: CurlDriver | None = None  # made on first use, on the loop that uses it
        self._connect_timeout = cfg.api.connect_timeout_seconds
        self._stream_limits = Limits(self._connect_timeout, cfg.stream.idle_timeout_seconds, stall=True)
        self._limits: dict[float, Limits] = {}  # per ``request`` timeout: one instance each (see Limits)
        self.proxy_failed: Callable[[str], None] | None = None  # a call through this proxy URL failed

    @property
    def driver(self) -> CurlDriver:
        driver = self._driver
        if driver is None:
            tls = self._cfg.tls
            driver = self._driver = CurlDriver(proxy=tls.proxy_url or None, max_transfers=tls.max_transfers,
                                               idle_handles=tls.idle_connections, idle_connections=tls.idle_connections,
                                               cacert=tls.ca_file or DEFAULT_CACERT)
        return driver

    async def _start(self, method: str, url: str, headers: dict[str, str], body: bytes | None, limits: Limits,
                     proxy: str | None, collect: bool = False) -> Transfer:
        driver = self.driver
        if driver.must_wait():
            await driver.slot()
        return driver.start(method, url, headers.items(), body, limits, self._profile, proxy, collect=collect)

    def _proxy_error(self, proxy: str | None) -> None:
        if proxy and self.proxy_failed is not None:
            self.proxy_failed(proxy)

    async def open_stream(self, url: str, headers: dict[str, str], body: bytes, proxy: str | None = None) -> UpstreamStream:
        """``proxy``: this call's proxy URL, ``""`` for none; None: ``tls.proxy_url``."""
        leg = open_leg("POST", url, headers, body)
        transfer = None
        try:
            transfer = await self._start("POST", url, headers, body, self._stream_limits, proxy)
            await transfer.headers()
        except TransferError as exc:
            if transfer is not None:
                transfer.abort()
            self._proxy_error(proxy)
            raise _failed(leg, transport_error(exc)) from None
        except BaseException:
            if transfer is not None:
                transfer.abort()
            _abandoned(leg)
            raise
        return UpstreamStream(transfer, leg)

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 60.0,
        proxy: str | None = None,
    ) -> SimpleResponse:
        leg = open_leg(method, url, headers or {}, body)
        limits = self._limits.get(timeout)
        if limits is None:
            limits = self._limits[timeout] = Limits(min(timeout, self._connect_timeout), timeout)
        transfer = None
        try:
            transfer = await self._start(method, url, headers or {}, body, limits, proxy, collect=True)
            await transfer.finished()
        except TransferError as exc:
            self._proxy_error(proxy)
            raise _failed(leg, transport_error(exc)) from None
        except BaseException:
            _abandoned(leg)
            raise
        finally:
            if transfer is not None:
                transfer.abort()  # a no-op once it is done
        response_headers, _ = _parse_headers(transfer.head)
        reply = SimpleResponse(transfer.status, response_headers, transfer.take())
        if leg is not None:
            leg.response(reply.status, reply.headers)
            leg.data(reply.body)
            leg.end()
        return reply

    async def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
