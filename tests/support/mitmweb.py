"""Reading what mitmweb shows, through its REST API (the same data its UI renders)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import httpx

from tests.support.proxy import ProxyProcess
from tests.support.servers import free_port

T = TypeVar("T")


def mitmweb_args(*extra: str) -> tuple[str, ...]:
    return ("--set", "web_open_browser=false", "--set", f"web_port={free_port()}", *extra)


def eventually(probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; fail with its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(interval)


class LiveUpdates:
    """Everything mitmweb pushes to a browser over its ``/updates`` WebSocket while the block runs:
    each flow as it was at every step (added at ``requestheaders``, updated after each hook)."""

    def __init__(self, url: str, token: str) -> None:
        self._url = url.replace("http://", "ws://") + f"/updates?token={token}"
        self.messages: list[str] = []
        self._connected = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with aiohttp.ClientSession() as session, session.ws_connect(self._url) as ws:
            self._connected.set()
            stopping = asyncio.ensure_future(self._stop.wait())
            while True:
                receiving = asyncio.ensure_future(ws.receive())
                done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if receiving not in done:
                    receiving.cancel()
                    return
                message = receiving.result()
                if message.type != aiohttp.WSMsgType.TEXT:
                    return
                self.messages.append(message.data)

    def __enter__(self) -> LiveUpdates:
        self._thread.start()
        assert self._connected.wait(10), "could not subscribe to mitmweb's updates"
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def text(self) -> bytes:
        return "\n".join(self.messages).encode()


class MitmWeb:
    def __init__(self, proxy: ProxyProcess) -> None:
        self.http: httpx.Client = proxy.web_api()
        self._endpoint = proxy.web_endpoint()

    def command(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A state-changing call (edit, resume, kill), with an XSRF token in cookie and header as
        mitmweb's UI sends it (Tornado only checks that the two agree)."""
        token = "0123456789abcdef" * 2
        headers = {"X-XSRFToken": token, "Cookie": f"_mitmproxy_xsrf={token}", **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def live(self) -> LiveUpdates:
        return LiveUpdates(*self._endpoint)

    def flows(self) -> list[dict[str, Any]]:
        response = self.http.get("/flows")
        response.raise_for_status()
        return response.json()

    def content(self, flow: dict[str, Any], part: str) -> bytes:
        """A request or response body as mitmweb serves it (b"" when it has none)."""
        if not flow.get(part) or flow[part].get("contentLength") is None:
            return b""
        response = self.http.get(f"/flows/{flow['id']}/{part}/content.data")
        response.raise_for_status()
        return response.content

    def dump(self) -> bytes:
        """All flows as a mitmproxy flow file (the UI's "Save")."""
        response = self.http.get("/flows/dump")
        response.raise_for_status()
        return response.content

    def everything(self) -> bytes:
        """Every byte the UI could show or save: the flow list, each body, the dump."""
        flows = self.flows()
        parts = [self.http.get("/flows").content, self.dump()]
        parts += [self.content(flow, part) for flow in flows for part in ("request", "response")]
        return b"\n".join(parts)
