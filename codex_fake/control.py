"""``/__fake/*``: the control operations over HTTP, for a fake running as a subprocess.

Each route is a thin JSON wrapper around the same-named method of the backend (``Controls``,
which FakeCodex satisfies); a ValueError from a bad argument becomes a 400 so a typo in a
benchmark script fails loudly.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.Response]]


class Controls(Protocol):
    """The control operations of FakeCodex (see its docstrings)."""

    def reset(self) -> None: ...

    def script(self, *scenarios: Any, account: str | None = None) -> None: ...

    def fault(self, account: str, fault: Any, times: int | None = None) -> None: ...

    def clear_fault(self, account: str) -> None: ...

    def requests(self, path_suffix: str | None = None) -> list[dict[str, Any]]: ...

    def configure(self, **values: Any) -> None: ...

    def refresh_count(self, account: str | None = None) -> int: ...

    def set_usage(self, account: str, **values: Any) -> None: ...

    def approve_device(self, user_code: str) -> bool: ...

    def stats(self) -> dict[str, int]: ...

    def drop_websockets(self, account: str | None = None) -> int: ...


def reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data, default=str), content_type="application/json")


def guarded(fn: Callable[[web.Request], Awaitable[Any]]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        try:
            result = await fn(request)
        except (ValueError, TypeError, KeyError) as exc:
            return reply({"error": str(exc)}, status=400)
        return result if isinstance(result, web.Response) else reply(result if result is not None else {"ok": True})

    return handler


async def body_of(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError("control body must be JSON") from None
    if not isinstance(data, dict):
        raise ValueError("control body must be a JSON object")
    return data


def exportable(record: dict[str, Any]) -> dict[str, Any]:
    """A recorded request as JSON: ``raw`` bytes travel as base64 in ``raw_b64``."""
    out = {k: v for k, v in record.items() if k != "raw"}
    out["raw_b64"] = base64.b64encode(record.get("raw") or b"").decode()
    return out


def register(app: web.Application, fake: Controls) -> None:
    async def reset(request: web.Request) -> None:
        fake.reset()

    async def script(request: web.Request) -> dict[str, Any]:
        body = await body_of(request)
        scenarios = body.get("scenarios")
        if scenarios is None and "scenario" in body:
            scenarios = [body["scenario"]]
        if not isinstance(scenarios, list):
            raise ValueError("'scenarios' must be a list")
        fake.script(*scenarios, account=body.get("account"))
        return {"ok": True, "queued": len(scenarios)}

    async def set_fault(request: web.Request) -> None:
        body = await body_of(request)
        fake.fault(str(body["account"]), body["fault"], body.get("times"))

    async def clear_fault(request: web.Request) -> None:
        account = request.query.get("account")
        if not account:
            raise ValueError("account query parameter is required")
        fake.clear_fault(account)

    async def requests(request: web.Request) -> list[dict[str, Any]]:
        return [exportable(r) for r in fake.requests(request.query.get("path"))]

    async def config(request: web.Request) -> None:
        fake.configure(**await body_of(request))

    async def refresh_count(request: web.Request) -> dict[str, int]:
        return {"count": fake.refresh_count(request.query.get("account"))}

    async def usage(request: web.Request) -> None:
        body = await body_of(request)
        account = body.pop("account")
        fake.set_usage(str(account), **body)

    async def approve(request: web.Request) -> web.Response | None:
        body = await body_of(request)
        if not fake.approve_device(str(body.get("user_code", ""))):
            return reply({"error": "unknown user_code"}, status=404)
        return None

    async def stats(request: web.Request) -> dict[str, int]:
        return fake.stats()

    async def drop_websockets(request: web.Request) -> dict[str, int]:
        body = await body_of(request)
        return {"dropped": fake.drop_websockets(body.get("account"))}

    r = app.router
    r.add_post("/__fake/reset", guarded(reset))
    r.add_post("/__fake/script", guarded(script))
    r.add_post("/__fake/fault", guarded(set_fault))
    r.add_delete("/__fake/fault", guarded(clear_fault))
    r.add_get("/__fake/requests", guarded(requests))
    r.add_post("/__fake/config", guarded(config))
    r.add_get("/__fake/refresh_count", guarded(refresh_count))
    r.add_post("/__fake/usage", guarded(usage))
    r.add_post("/__fake/device/approve", guarded(approve))
    r.add_get("/__fake/stats", guarded(stats))
    r.add_post("/__fake/websockets/drop", guarded(drop_websockets))
