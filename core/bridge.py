"""The loopback bridge: an HTTP server inside mitmproxy's event loop that runs jobs.

mitmproxy cannot stream a body an addon makes up itself (mitmproxy-facts.md §2), so the addon
rewrites a translated request to ``http://127.0.0.1:<bridge>/__bridge/<token>``; mitmproxy then
streams this server's chunked answer to the client. aiohttp cancels the handler when mitmproxy
drops the connection (client gone), which aborts the upstream transfer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from aiohttp import web

from core.gateway.routes import Job
from core.gateway.exchange import Exchange
from core.protocols.base import Reply
from core.services import Services

logger = logging.getLogger(__name__)

PATH_PREFIX = "/__bridge/"
JOB_TTL_SECONDS = 60.0  # a job nobody fetched (client vanished before the hop) is dropped


class AiohttpSink:
    def __init__(self, request: web.BaseRequest) -> None:
        self._request = request
        self.response: web.StreamResponse | None = None

    async def reply(self, reply: Reply) -> None:
        self.response = web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    async def start(self, status: int, headers: dict[str, str]) -> None:
        self.response = web.StreamResponse(status=status, headers=headers)
        self.response.enable_chunked_encoding()
        await self.response.prepare(self._request)

    async def write(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)

    async def end(self) -> None:
        assert self.response is not None
        await self.response.write_eof()


class Bridge:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._jobs: dict[str, tuple[Job, asyncio.TimerHandle]] = {}
        self._server: asyncio.Server | None = None
        self._web_server: web.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1") -> int:
        self._web_server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._web_server, host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        for _, timer in self._jobs.values():
            timer.cancel()
        self._jobs.clear()
        if self._server is not None:
            self._server.close()
        if self._web_server is not None:
            await self._web_server.shutdown(1.0)

    def submit(self, job: Job) -> str:
        """Register ``job``; returns the bridge path that runs it."""
        token = secrets.token_urlsafe(12)
        timer = asyncio.get_running_loop().call_later(JOB_TTL_SECONDS, self._jobs.pop, token, None)
        self._jobs[token] = (job, timer)
        return PATH_PREFIX + token

    def discard(self, path: str) -> None:
        entry = self._jobs.pop(path.removeprefix(PATH_PREFIX), None)
        if entry is not None:
            entry[1].cancel()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        entry = self._jobs.pop(request.path.removeprefix(PATH_PREFIX), None)
        if entry is None:
            return web.json_response({"error": {"message": "unknown or expired bridge job", "type": "server_error"}}, status=410)
        job, timer = entry
        timer.cancel()
        sink = AiohttpSink(request)
        try:
            await Exchange(self._services, job, sink).run()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("bridge job %s failed", job.request_id)
            if sink.response is None or not sink.response.prepared:
                return web.json_response({"error": {"message": "internal proxy error", "type": "server_error"}}, status=502)
        assert sink.response is not None
        return sink.response
