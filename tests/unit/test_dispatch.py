"""The cached hook dispatch keeps mitmproxy's behaviour: chain order, AddonHalt, errors logged per
addon, addons added, removed and changed while running, async handlers refused by ``trigger``."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import types
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mitmproxy import exceptions, hooks
from mitmproxy.proxy.layers.http import HttpRequestHook, HttpResponseHook
from mitmproxy.test import taddons, tflow

from core.hosts import dispatch

pytestmark = pytest.mark.skipif(not dispatch.install(), reason="mitmproxy version without the speed-ups")


class Recorder:
    def __init__(self, name: str, calls: list[str], children: list[Any] | None = None) -> None:
        self.name = name
        self.calls = calls
        if children is not None:
            self.addons = children

    def request(self, flow: Any) -> None:
        self.calls.append(self.name)


class Halting(Recorder):
    def request(self, flow: Any) -> None:
        super().request(flow)
        raise exceptions.AddonHalt()


class Failing(Recorder):
    def request(self, flow: Any) -> None:
        super().request(flow)
        raise ValueError("boom")


class AsyncOne(Recorder):
    async def request(self, flow: Any) -> None:
        self.calls.append(self.name)


def in_mitmproxy(test: Callable[[Any], Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body inside a mitmproxy test context (it needs a running loop)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        async def body() -> None:
            with taddons.context(loadcore=False) as tctx:
                await test(tctx, *args, **kwargs)

        asyncio.run(body())

    run.__signature__ = inspect.Signature([p for name, p in inspect.signature(test).parameters.items() if name != "context"])  # type: ignore[attr-defined]
    return run


@in_mitmproxy
async def test_chain_order_children_included(context: Any) -> None:
    calls: list[str] = []
    parent = Recorder("parent", calls, children=[Recorder("child", calls)])
    context.master.addons.add(Recorder("first", calls), parent, AsyncOne("last", calls))
    await context.master.addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
    assert calls == ["first", "parent", "child", "last"]


@in_mitmproxy
async def test_addon_halt_stops_the_event(context: Any) -> None:
    calls: list[str] = []
    context.master.addons.add(Recorder("a", calls), Halting("halt", calls), Recorder("after", calls))
    await context.master.addons.trigger_event(HttpRequestHook(tflow.tflow()))
    context.master.addons.trigger(HttpRequestHook(tflow.tflow()))
    assert calls == ["a", "halt", "a", "halt"]


@in_mitmproxy
async def test_an_error_is_logged_and_the_next_addon_runs(context: Any, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    context.master.addons.add(Failing("fails", calls), Recorder("next", calls))
    with caplog.at_level(logging.ERROR):
        await context.master.addons.trigger_event(HttpRequestHook(tflow.tflow()))
    assert calls == ["fails", "next"] and "Addon error: boom" in caplog.text


@in_mitmproxy
async def test_addons_added_and_removed_while_running(context: Any) -> None:
    calls: list[str] = []
    manager = context.master.addons
    first = Recorder("first", calls)
    manager.add(first)
    await manager.trigger_event(HttpRequestHook(tflow.tflow()))
    manager.add(Recorder("second", calls))
    await manager.trigger_event(HttpRequestHook(tflow.tflow()))
    manager.remove(first)
    await manager.trigger_event(HttpRequestHook(tflow.tflow()))
    assert calls == ["first", "first", "second", "second"]


@in_mitmproxy
async def test_a_handler_replaced_at_run_time(context: Any, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    addon = Recorder("one", calls)
    context.master.addons.add(addon)
    await context.master.addons.trigger_event(HttpRequestHook(tflow.tflow()))
    addon.request = types.ModuleType("request")  # an import that shares the hook's name: ignored, as by mitmproxy
    await context.master.addons.trigger_event(HttpRequestHook(tflow.tflow()))
    addon.request = "not callable"
    with caplog.at_level(logging.ERROR):
        context.master.addons.trigger(HttpRequestHook(tflow.tflow()))
    assert calls == ["one"] and "not callable" in caplog.text


@in_mitmproxy
async def test_sync_trigger_refuses_an_async_handler(context: Any, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    context.master.addons.add(AsyncOne("async", calls), Recorder("sync", calls))
    with caplog.at_level(logging.ERROR):
        context.master.addons.trigger(HttpRequestHook(tflow.tflow()))
    assert calls == ["sync"] and "cannot be called from sync context" in caplog.text


@in_mitmproxy
async def test_other_events_take_mitmproxys_path_and_refresh_the_cache(context: Any) -> None:
    calls: list[str] = []
    manager = context.master.addons
    holder = Recorder("holder", calls, children=[])
    manager.add(holder)
    await manager.trigger_event(HttpRequestHook(tflow.tflow()))
    holder.addons.append(Recorder("late child", calls))  # as ScriptLoader reorders its scripts in configure
    manager.trigger(hooks.ConfigureHook(set()))
    await manager.trigger_event(HttpRequestHook(tflow.tflow()))
    assert calls == ["holder", "holder", "late child"]


@in_mitmproxy
async def test_log_records_reach_add_log_handlers_and_keep_the_cache(context: Any) -> None:
    """mitmproxy logs a few lines per connection ("client connect", ...), each an ``add_log`` event:
    dispatched like a flow event, in chain order, without dropping the cached handler lists."""
    from mitmproxy.log import AddLogHook, LogEntry

    seen: list[str] = []

    class Listener:
        def __init__(self, name: str) -> None:
            self.name = name

        def add_log(self, entry: Any) -> None:
            seen.append(f"{self.name}: {entry.msg}")

    manager = context.master.addons
    manager.add(Listener("first"), Listener("second"))
    await manager.trigger_event(HttpRequestHook(tflow.tflow()))
    assert dispatch._CACHE in manager.__dict__
    manager.trigger(AddLogHook(LogEntry("client connect", "info")))
    assert seen == ["first: client connect", "second: client connect"]
    assert "add_log" in manager.__dict__[dispatch._CACHE] and "request" in manager.__dict__[dispatch._CACHE]


@in_mitmproxy
async def test_log_records_skip_add_log_only_while_nobody_handles_it(context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record logged on the loop's thread is not scheduled for ``add_log`` while no addon has
    that hook; once one has, it gets every record, from the loop's thread or another one."""
    master = context.master
    scheduled: list[Any] = []
    schedule = master.event_loop.call_soon_threadsafe

    def recording(callback: Any, *args: Any, **kwargs: Any) -> Any:
        scheduled.append(args[0] if args else callback)
        return schedule(callback, *args, **kwargs)

    monkeypatch.setattr(master.event_loop, "call_soon_threadsafe", recording)
    log = logging.getLogger("codex-proxy-test")
    log.warning("nobody listens")
    assert not [hook for hook in scheduled if isinstance(hook, hooks.Hook)]

    seen: list[str] = []

    class Listener:
        def add_log(self, entry: Any) -> None:
            seen.append(entry.msg.rpartition("] ")[2])  # after mitmproxy's time stamp

    master.addons.add(Listener())
    log.warning("someone listens")
    await asyncio.to_thread(log.warning, "from another thread")
    for _ in range(50):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    assert seen == ["someone listens", "from another thread"]


@in_mitmproxy
async def test_update_follows_every_flow_event(context: Any) -> None:
    seen: list[str] = []

    class Watcher:
        def response(self, flow: Any) -> None:
            seen.append("response")

        def update(self, flows: Any) -> None:
            seen.append("update")

    context.master.addons.add(Watcher())
    await context.master.addons.handle_lifecycle(HttpResponseHook(tflow.tflow(resp=True)))
    assert seen == ["response", "update"]


def test_header_reads_follow_every_change() -> None:
    """``Headers.get_all`` answers from an index of the fields; every way of changing the headers
    (set, add, insert, delete, replace the fields, copy then change) is seen by the next read."""
    from mitmproxy import http

    headers = http.Headers([(b"Content-Type", b"a"), (b"X-Two", b"1"), (b"x-two", b"2")])
    assert headers.get_all("x-TWO") == ["1", "2"] and headers["content-type"] == "a"
    headers.get_all("x-two").append("changed by a caller")
    assert headers.get_all("X-Two") == ["1", "2"]
    headers["content-type"] = "b"
    assert headers.get_all("Content-Type") == ["b"]
    headers.add("X-Two", "3")
    headers.insert(0, b"X-Two", b"0")
    assert headers.get_all(b"x-two") == ["0", "1", "2", "3"]
    del headers["x-two"]
    assert headers.get_all("x-two") == [] and "X-Two" not in headers
    headers.fields = ((b"X-New", b"\xff"),)
    assert headers.get_all("x-new") == ["\udcff"] and headers.get("content-type") is None
    copy = headers.copy()
    copy["x-new"] = "other"
    assert headers["x-new"] == "\udcff" and copy["X-New"] == "other"
    headers.set_all("x-many", ["1", "2"])
    assert headers.get_all("X-MANY") == ["1", "2"]
