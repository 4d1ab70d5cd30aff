"""The dashboard and management API (a Flask app) answered in-process, like every other route.

A WSGI app blocks, so each call runs on a worker thread; the answer streams back to the event loop
chunk by chunk. The request the app sees is the client's own, credentials included (they were
kept off the flow, not off the request), with the client's real address as ``REMOTE_ADDR``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from werkzeug.test import EnvironBuilder

from core.gateway.sink import Sink
from core.protocols.base import ClientRequest

logger = logging.getLogger(__name__)

WORKERS = 8  # dashboard calls at once; more wait their turn (a management API, not a data path)
_SKIPPED_HEADERS = frozenset({"content-length", "content-type", "host", "transfer-encoding", "connection"})


class ControlPlane:
    def __init__(self, app: Any) -> None:
        self._app = app
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="control-plane")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def environ(self, request: ClientRequest, scheme: str, host: str) -> dict[str, Any]:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _SKIPPED_HEADERS]
        builder = EnvironBuilder(
            path=request.path, base_url=f"{scheme}://{host}", query_string=urlencode(list(request.query.items())),
            method=request.method, headers=headers, data=request.body,
            content_type=request.headers.get("content-type"),
            environ_base={"REMOTE_ADDR": request.client_addr or "", "SERVER_PROTOCOL": "HTTP/1.1"},
        )
        try:
            return builder.get_environ()
        finally:
            builder.close()

    async def serve(self, environ: dict[str, Any], sink: Sink) -> int:
        """Run the app on a worker thread, streaming its answer into ``sink``; returns the status."""
        loop = asyncio.get_running_loop()
        head: asyncio.Future[tuple[int, list[tuple[str, str]]]] = loop.create_future()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)

        def run() -> None:
            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                loop.call_soon_threadsafe(_settle, head, (int(status.split(" ", 1)[0]), list(headers)))
                return lambda data: None

            body: Iterable[bytes] | None = None
            try:
                body = self._app(environ, start_response)
                for chunk in body:
                    if chunk:
                        asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()
            except Exception:
                logger.exception("control plane failed on %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
                loop.call_soon_threadsafe(_settle, head, (500, [("content-type", "application/json")]))
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
                asyncio.run_coroutine_threadsafe(chunks.put(None), loop)

        worker = loop.run_in_executor(self._pool, run)
        finished = False
        try:
            status, headers = await head
            await sink.start(status, headers)
            while (chunk := await chunks.get()) is not None:
                await sink.write(chunk)
            finished = True
            await sink.end()
            return status
        finally:
            if not finished:  # the client left: let the worker run out instead of blocking on a full queue
                worker.add_done_callback(lambda _: None)
                loop.create_task(_drain(chunks))


async def _drain(chunks: asyncio.Queue[bytes | None]) -> None:
    while await chunks.get() is not None:
        pass


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
