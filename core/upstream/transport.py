"""One shared curl_cffi AsyncSession for every upstream call.

curl_cffi's pool waits once ``max_clients`` transfers run, so it is sized for hundreds of
concurrent streams; closing a stream sets ``quit_now`` first, otherwise curl_cffi keeps reading
until the backend finishes the (no longer wanted) generation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from curl_cffi import CurlHttpVersion
from curl_cffi.requests import AsyncSession
from curl_cffi.requests.exceptions import RequestException

from core.codex.errors import MAX_ERROR_BODY, RETRY_SAME, UpstreamError
from core.config import Config
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


class UpstreamStream:
    """An open streaming response; iterate ``chunks()`` and always ``aclose()``."""

    __slots__ = ("status", "headers", "set_cookies", "_response", "_closed", "_leg")

    def __init__(self, response: Any, leg: Leg | None = None) -> None:
        self._response = response
        self.status: int = response.status_code
        self.headers: dict[str, str] = {k.lower(): v for k, v in response.headers.items()}
        self.set_cookies: list[str] = response.headers.get_list("set-cookie")  # the dict keeps only one
        self._closed = False
        self._leg = leg
        if leg is not None:
            leg.response(self.status, self.headers)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_content():
                if self._leg is not None:
                    self._leg.data(chunk)
                yield chunk
        except RequestException as exc:
            raise _failed(self._leg, transport_error(exc)) from None

    async def read(self, limit: int = MAX_ERROR_BODY) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        await self.aclose()
        return b"".join(parts)[:limit]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._leg is not None:
            self._leg.end()
        if self._response.quit_now is not None:
            self._response.quit_now.set()
        try:
            await self._response.aclose()
        except (RequestException, asyncio.CancelledError):
            pass


@dataclass(slots=True)
class SimpleResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class UpstreamTransport:
    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._session = AsyncSession(
            max_clients=int(cfg.get("tls.max_clients") or 512),
            impersonate=cfg.get("tls.impersonate") or None,
            proxy=cfg.get("tls.proxy_url") or None,
            http_version=CurlHttpVersion.V1_1 if cfg.get("tls.force_http11") else None,
            # One session serves every account: a shared cookie jar would replay one account's
            # Cloudflare cookies for another. Callers send the cookies they mean to (per account).
            discard_cookies=True,
        )

    def _timeout(self) -> tuple[float, float]:
        return (float(self._cfg.get("api.connect_timeout_seconds") or 15), float(self._cfg.get("api.timeout_seconds") or 600))

    async def open_stream(self, url: str, headers: dict[str, str], body: bytes) -> UpstreamStream:
        leg = open_leg("POST", url, headers, body)
        try:
            response = await self._session.request(
                "POST", url, headers=headers, content=body, stream=True, timeout=self._timeout()
            )
        except RequestException as exc:
            raise _failed(leg, transport_error(exc)) from None
        except BaseException:
            _abandoned(leg)
            raise
        return UpstreamStream(response, leg)

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 60.0,
    ) -> SimpleResponse:
        leg = open_leg(method, url, headers or {}, body)
        try:
            response = await self._session.request(method, url, headers=headers, content=body, timeout=timeout)
        except RequestException as exc:
            raise _failed(leg, transport_error(exc)) from None
        except BaseException:
            _abandoned(leg)
            raise
        reply = SimpleResponse(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)
        if leg is not None:
            leg.response(reply.status, reply.headers)
            leg.data(reply.body)
            leg.end()
        return reply

    async def close(self) -> None:
        await self._session.close()
