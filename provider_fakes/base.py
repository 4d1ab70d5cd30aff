"""What every fake provider shares: an aiohttp app on its own loop in a daemon thread, the keys it
accepts, the requests it received, scripted answers and per-key faults, and the fake "model"
(which echoes the user's last words unless a script says otherwise)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import orjson
from aiohttp import web

_WORDS = re.compile(r"\s*\S+")


def split_words(text: str) -> list[str]:
    parts = _WORDS.findall(text)
    return parts or ([text] if text else [])


def vector(text: str, dimensions: int = 8) -> list[float]:
    """A deterministic unit-ish embedding of ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dimensions)]


def tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), headers={"content-type": "application/json", **(headers or {})})


class Refusal(Exception):
    """An error answer the handler raises; ``body`` already in the provider's own shape."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


@web.middleware
async def refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refusal as refusal:
        return json_response(refusal.status, refusal.body, refusal.headers)


@dataclass(slots=True)
class Answer:
    """What the fake model says in one turn (a scenario, or the echo)."""

    text: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "arguments": dict|str, "id"?}
    finish: str | None = None  # the provider's own cut-off reason, else a normal stop
    stream_error: dict[str, Any] | None = None  # {"after": n events, ...} an error in the stream
    delay_ms: float = 0.0  # between stream events


class FakeProvider:
    """Subclasses add their routes in ``routes`` and refuse bad keys in ``check_key``."""

    name = "provider"

    def __init__(self, keys: tuple[str, ...] = ("test-key",)) -> None:
        self.keys = set(keys)
        self.base_url = ""
        self._requests: list[dict[str, Any]] = []
        self._scripts: deque[dict[str, Any]] = deque()
        self._faults: dict[str, list[Any]] = {}  # key → [status, body, headers, times left]
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[refusals])
        self.routes(self.app.router)

    # --- the test's controls (any thread) ---------------------------------------------------------

    def script(self, *scenarios: dict[str, Any]) -> None:
        with self._lock:
            self._scripts.extend(scenarios)

    def fault(self, key: str, status: int, body: Any = None, headers: dict[str, str] | None = None, times: int = 1) -> None:
        """The next ``times`` requests made with ``key`` get this answer (body in the provider's shape
        when None)."""
        with self._lock:
            self._faults[key] = [status, body, headers or {}, times]

    def requests(self, path_suffix: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self._requests if path_suffix is None or r["path"].endswith(path_suffix)]

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._scripts.clear()
            self._faults.clear()

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self, path_prefix: str = "") -> str:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.base_url = f"http://127.0.0.1:{port}{path_prefix}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError(f"fake {self.name} did not start")
        return self.base_url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # --- for the subclasses --------------------------------------------------------------------------------

    def routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def key_of(self, request: web.Request) -> str | None:
        raise NotImplementedError

    def refusal(self, status: int, message: str, kind: str) -> Refusal:
        """An error in the provider's shape."""
        raise NotImplementedError

    async def receive(self, request: web.Request) -> tuple[str, Any]:
        """Record the request, check its key and any fault; returns (key, JSON body or None)."""
        raw = await request.read()
        body: Any = None
        if request.content_type == "multipart/form-data":
            fields, files = form_fields(request, raw)
            body = {**fields, "_files": files}
        elif raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise self.refusal(400, "We could not parse the JSON body of your request.", "invalid_json") from None
        key = self.key_of(request)
        with self._lock:
            self._requests.append({"method": request.method, "path": request.path, "query": dict(request.query),
                                   "headers": {k.lower(): v for k, v in request.headers.items()}, "body": body, "raw": raw,
                                   "key": key, "time": time.time()})  # fmt: skip
            fault = self._faults.get(key or "")
            if fault is not None:
                fault[3] -= 1
                if fault[3] <= 0:
                    del self._faults[key or ""]
        if key is None or key not in self.keys:
            raise self.refusal(401, "Incorrect API key provided." if key else "Missing API key.", "invalid_api_key")
        if fault is not None:
            status, fault_body, headers, _ = fault
            if fault_body is None:
                own = self.refusal(status, f"fault {status} for this key", "fault")
                raise Refusal(status, own.body, {**own.headers, **headers})
            raise Refusal(status, fault_body, headers)
        return key, body

    def answer(self, last_user_text: str) -> Answer:
        with self._lock:
            scenario = self._scripts.popleft() if self._scripts else None
        if scenario is None:
            return Answer(text=f"You said: {last_user_text}" if last_user_text else "Hello from the fake provider.")
        return Answer(text=scenario.get("text"), reasoning=scenario.get("reasoning"), tool_calls=list(scenario.get("tool_calls") or []),
                      finish=scenario.get("finish"), stream_error=scenario.get("stream_error"),
                      delay_ms=float(scenario.get("delay_ms") or 0))  # fmt: skip


def form_fields(request: web.Request, raw: bytes) -> tuple[dict[str, str], list[str]]:
    """A multipart body's text fields and the names of its file fields."""
    head = b"Content-Type: " + request.headers.get("Content-Type", "").encode() + b"\r\nMIME-Version: 1.0\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    fields: dict[str, str] = {}
    files: list[str] = []
    for part in message.get_payload() if message.is_multipart() else []:  # type: ignore[union-attr]
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            files.append(str(name))
        elif isinstance(name, str):
            fields[name] = (part.get_payload(decode=True) or b"").decode()
    return fields, files


def call_id(prefix: str = "call_") -> str:
    return prefix + secrets.token_hex(8)


def arguments_text(call: dict[str, Any]) -> str:
    args = call.get("arguments")
    return args if isinstance(args, str) else orjson.dumps(args or {}).decode()
