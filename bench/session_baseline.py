"""The upstream transport as it was before core/upstream/driver.py: one curl_cffi ``AsyncSession``.

Kept only so ``python -m bench.transport`` can measure before and after side by side; the proxy
does not use it. Same interface as ``core.upstream.transport.UpstreamTransport`` (no tap legs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from curl_cffi import CurlHttpVersion
from curl_cffi.requests import AsyncSession

from core.settings import Settings
from core.upstream.fingerprint import named
from core.upstream.transport import SimpleResponse


class SessionStream:
    def __init__(self, response: Any) -> None:
        self._response = response
        self.status: int = response.status_code
        self.headers: dict[str, str] = {k.lower(): v for k, v in response.headers.items()}
        self.set_cookies: list[str] = response.headers.get_list("set-cookie")
        self._closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_content():
            yield chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._response.quit_now is not None:
            self._response.quit_now.set()  # without it, aclose() reads the stream to its end
        await self._response.aclose()


class SessionTransport:
    def __init__(self, cfg: Settings, max_clients: int) -> None:
        self._cfg = cfg
        self._session = AsyncSession(
            max_clients=max_clients,
            # AsyncSession knows curl_cffi's browser targets only, not a recorded client's profile.
            impersonate=None if named(cfg.tls.impersonate) else cfg.tls.impersonate or None,
            proxy=cfg.tls.proxy_url or None,
            http_version=CurlHttpVersion.V1_1 if cfg.tls.force_http11 else None,
            discard_cookies=True,
        )

    def _timeout(self) -> tuple[float, float]:
        return (self._cfg.api.connect_timeout_seconds, self._cfg.api.timeout_seconds)

    async def open_stream(self, url: str, headers: dict[str, str], body: bytes) -> SessionStream:
        response = await self._session.request("POST", url, headers=headers, content=body, stream=True,
                                               timeout=self._timeout())
        return SessionStream(response)

    async def request(self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None,
                      timeout: float = 60.0) -> SimpleResponse:
        response = await self._session.request(method, url, headers=headers, content=body, timeout=timeout)
        return SimpleResponse(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)

    async def close(self) -> None:
        await self._session.close()
