"""Cheaper flow handling inside mitmproxy, with the same behaviour for every addon.

Every API call is a mitmproxy flow, so mitmproxy's per-flow bookkeeping is most of what a call
costs (docs/benchmark.md). These changes remove bookkeeping without changing what addons observe:

* **Hook dispatch.** ``AddonManager.trigger_event`` walks all ~50 addons (and their children) for
  every event of every flow, entering a ``safecall()`` per addon, whether or not it has a handler.
  Here the addons that have a handler are found once per event and reused until the chain changes
  (an addon that gains a hook method later is seen after the next change). Calls keep chain
  order; an error in a top-level addon's handlers is logged as ``safecall`` logs it (inlined here)
  and the next addon runs; ``AddonHalt`` still stops the event; a sync ``trigger`` still refuses
  async handlers. Events outside ``FLOW_EVENTS`` (load, configure, running, done, ...) take
  mitmproxy's own path, and the cache is dropped after each of them and whenever an addon is
  registered or removed (scripts that reload re-register; ``ScriptLoader`` re-orders its children
  only inside ``configure``). ``Hook.args`` keeps each hook class's field names.
* **Header reads.** ``Headers.get_all`` (behind every header lookup) in one pass over the fields.
* **Hooks that finish at once.** mitmproxy runs every hook as its own task that then waits for the
  connection's event lock; a hook whose handlers are all synchronous (nearly every one) now
  completes inside the event that raised it. A hook that really waits (an async handler, an
  intercepted flow) continues as a task exactly as before.
* **Option reads.** Reading an option deep-copies it; immutable values are now returned as they
  are (deepcopy would return the same object).
* **Pure lookups remembered.** Built-in addons read ``Request.pretty_host``/``pretty_url`` several
  times per flow, and each read parses the Host header again (``url.parse_authority``: a regex,
  IDNA, host validation); the TLS addon formats the CA's serial number into its CRL path for every
  request. Both are pure functions of their inputs, so their results are kept (a bounded cache
  keyed by the exact arguments; for the CRL path, by the CA object it was made from).
* **Log records nobody listens to.** mitmproxy hands every log record to the deprecated
  ``add_log`` event as well: a formatted copy, a ``call_soon_threadsafe`` (a write to the loop's
  wake-up socket) and a later dispatch, four times per connection ("client connect" ...). No
  built-in addon handles ``add_log``; when none in the chain does and the record comes from the
  loop's own thread, that copy is skipped (what the dispatch would have done with it: nothing).
  Records from other threads, or with an ``add_log`` handler present, take mitmproxy's own path.
* **Debug-only checks.** mitmproxy type-checks every HTTP message field and every layer event
  when Python runs without ``-O``; these checks (``if __debug__``) never fire in a correct
  program, and ``python -O`` would skip them anyway.

The patched functions are internal, so this only installs on the mitmproxy versions it was
checked on (``PROVEN_VERSIONS``): mitmproxy's own test suite passes the same with and without it
(scripts/mitmproxy_suite.py), and tests/unit/test_dispatch.py checks the dispatch rules above. On
any other version mitmproxy runs unchanged, only slower.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import importlib
import inspect
import logging
import os
import pkgutil
import types
from collections.abc import Callable
from typing import Any

from mitmproxy import exceptions, hooks, http
from mitmproxy import log as mitmproxy_log
from mitmproxy.addonmanager import AddonManager, cut_traceback, traverse
from mitmproxy.addonmanager import logger as addon_logger
from mitmproxy.proxy import commands, events
from mitmproxy.proxy import server as proxy_server
from mitmproxy.utils import asyncio_utils
from mitmproxy.version import VERSION

logger = logging.getLogger(__name__)

PROVEN_VERSIONS = frozenset({"12.3.1"})

# Events raised per flow, per connection or per log record (``add_log``: mitmproxy logs "client
# connect" and the like, a few per connection): the only ones worth a cached handler list.
FLOW_EVENTS = frozenset({
    "add_log",
    "requestheaders", "request", "responseheaders", "response", "error", "update",
    "http_connect", "http_connected", "http_connect_error", "http_connect_upstream",
    "client_connected", "client_disconnected", "server_connect", "server_connected",
    "server_disconnected", "server_connect_error", "next_layer",
    "tls_clienthello", "tls_start_client", "tls_start_server", "tls_established_client",
    "tls_established_server", "tls_failed_client", "tls_failed_server",
    "websocket_start", "websocket_message", "websocket_end", "tcp_start", "tcp_message", "tcp_end", "tcp_error",
    "udp_start", "udp_message", "udp_end", "udp_error", "dns_request", "dns_response", "dns_error",
})  # fmt: skip

_CACHE = "_codex_handlers"
_original: dict[str, Callable[..., Any]] = {}
installed = False


def _handlers(manager: AddonManager, name: str) -> list[tuple[Any, ...]]:
    """Per top-level addon that has any, the addons (it and its children, in traversal order) that
    had a ``name`` attribute when the chain was last read. Handlers are still fetched by name at
    each call, so a handler an addon replaces or removes at run time is seen at once."""
    cache: dict[str, list[tuple[Any, ...]]] = manager.__dict__.setdefault(_CACHE, {})
    found = cache.get(name)
    if found is None:
        found = []
        for top in manager.chain:
            holders = tuple(addon for addon in traverse([top]) if getattr(addon, name, None))
            if holders:
                found.append(holders)
        cache[name] = found
    return found


def _handler(addon: Any, name: str) -> Callable[..., Any] | None:
    """As mitmproxy's ``_iter_hooks`` finds it: None for a module of the same name (an import)."""
    func = getattr(addon, name, None)
    if not func or isinstance(func, types.ModuleType):
        return None
    if not callable(func):
        raise exceptions.AddonManagerError(f"Addon handler {name} ({addon}) not callable")
    return func


def _addon_error(exc: Exception) -> None:
    """What mitmproxy's ``safecall`` does with an addon's exception (the same record, the same
    logger); inlined because entering a context manager per addon per event is a cost of its own."""
    tb = cut_traceback(cut_traceback(exc.__traceback__, "invoke_addon_sync"), "invoke_addon")
    addon_logger.error(f"Addon error: {exc}", exc_info=(type(exc), exc, tb))


def _hook_args(self: hooks.Hook) -> list[Any]:
    """``Hook.args`` without asking ``dataclasses.fields`` anew for every event."""
    names = _HOOK_FIELDS.get(type(self))
    if names is None:
        names = _HOOK_FIELDS[type(self)] = tuple(field.name for field in dataclasses.fields(self))  # type: ignore[arg-type]
    return [getattr(self, name) for name in names]


_HOOK_FIELDS: dict[type, tuple[str, ...]] = {}


def _forget(manager: AddonManager) -> None:
    manager.__dict__.pop(_CACHE, None)


def _structural(name: str) -> Callable[..., Any]:
    original = _original[name]

    def changed_chain(self: AddonManager, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            _forget(self)

    changed_chain.__name__ = name
    return changed_chain


async def trigger_event(self: AddonManager, event: hooks.Hook) -> None:
    name = getattr(event, "name", None)  # a non-hook argument gets mitmproxy's own handling (an error, logged)
    if name not in FLOW_EVENTS:
        try:
            return await _original["trigger_event"](self, event)
        finally:
            _forget(self)
    args = event.args()
    for holders in _handlers(self, name):
        try:
            for addon in holders:
                if (func := _handler(addon, name)) is not None:
                    result = func(*args)
                    if result is not None and inspect.isawaitable(result):
                        await result
        except exceptions.AddonHalt:
            return
        except exceptions.OptionsError:
            raise
        except Exception as exc:
            _addon_error(exc)


def trigger(self: AddonManager, event: hooks.Hook) -> None:
    name = getattr(event, "name", None)  # a non-hook argument gets mitmproxy's own handling (an error, logged)
    if name not in FLOW_EVENTS:
        try:
            return _original["trigger"](self, event)
        finally:
            _forget(self)
    args = event.args()
    for holders in _handlers(self, name):
        try:
            for addon in holders:
                if (func := _handler(addon, name)) is None:
                    continue
                if inspect.iscoroutinefunction(func):
                    raise exceptions.AddonManagerError(f"Async handler {name} ({addon}) cannot be called from sync context")
                func(*args)
        except exceptions.AddonHalt:
            return
        except exceptions.OptionsError:
            raise
        except Exception as exc:
            _addon_error(exc)


# --- hooks that finish at once -------------------------------------------------------------------


@types.coroutine
def _resume(coro: Any, yielded: Any) -> Any:
    """Drive a coroutine that already ran up to its first suspension, from inside a task."""
    while True:
        try:
            value = yield yielded
        except BaseException as exc:  # delivered by the task (a cancellation, the awaited future's error)
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value


async def _finish_hook(handler: proxy_server.ConnectionHandler, coro: Any, yielded: Any, command: commands.StartHook) -> None:
    await _resume(coro, yielded)
    if command.blocking:
        await handler.server_event(events.HookCompleted(command))


async def server_event(self: proxy_server.ConnectionHandler, event: events.Event) -> None:
    """mitmproxy 12.3.1's ``ConnectionHandler.server_event``, except that a hook is first run in
    place: when it completes without suspending, its ``HookCompleted`` is handled next inside
    this same locked section (where the hook's own task would have acquired the lock next)."""
    async with self._server_event_lock:
        self.timeout_watchdog.register_activity()
        pending = collections.deque((event,))
        while pending:
            event = pending.popleft()
            try:
                for command in self.layer.handle_event(event):
                    if isinstance(command, commands.OpenConnection):
                        assert command.connection not in self.transports
                        handler = asyncio_utils.create_task(
                            self.open_connection(command), name=f"server connection handler {command.connection.address}",
                            keep_ref=False, client=self.client.peername,
                        )
                        self.transports[command.connection] = proxy_server.ConnectionIO(handler=handler)
                    elif isinstance(command, commands.RequestWakeup):
                        task = asyncio_utils.create_task(
                            self.wakeup(command), name=f"wakeup timer ({command.delay:.1f}s)", keep_ref=False,
                            client=self.client.peername,
                        )
                        self.wakeup_timer.add(task)
                    elif isinstance(command, commands.ConnectionCommand) and command.connection not in self.transports:
                        pass  # The connection has already been closed.
                    elif isinstance(command, commands.SendData):
                        writer = self.transports[command.connection].writer
                        assert writer
                        if not writer.is_closing():
                            writer.write(command.data)
                    elif isinstance(command, commands.CloseTcpConnection):
                        self.close_connection(command.connection, command.half_close)
                    elif isinstance(command, commands.CloseConnection):
                        self.close_connection(command.connection, False)
                    elif isinstance(command, commands.StartHook):
                        coro = self.handle_hook(command)
                        try:
                            yielded = coro.send(None)
                        except StopIteration:
                            if command.blocking:
                                pending.append(events.HookCompleted(command))
                        except Exception:  # as an unretrieved task exception would be: logged, the hook never completes
                            self.log(f"hook {command.name} failed", logging.ERROR, exc_info=True)
                        else:
                            asyncio_utils.create_task(
                                _finish_hook(self, coro, yielded, command), name=f"handle_hook({command.name})",
                                keep_ref=True, client=self.client.peername,
                            )
                    elif isinstance(command, commands.Log):
                        self.log(command.message, command.level)
                    else:
                        raise RuntimeError(f"Unexpected command: {command}")
            except Exception:
                self.log("mitmproxy has crashed!", logging.ERROR, exc_info=True)


# --- log records nobody listens to ----------------------------------------------------------------


def _legacy_log_emit(original: Callable[..., Any]) -> Callable[..., Any]:
    def emit(self: mitmproxy_log.LegacyLogEvents, record: logging.LogRecord) -> None:
        loop = self.master.event_loop
        if asyncio.events._get_running_loop() is loop and not _handlers(self.master.addons, "add_log"):
            return  # the dispatch it would schedule finds no handler
        original(self, record)

    return emit


# --- debug-only checks ---------------------------------------------------------------------------


def _skip_debug_checks() -> int:
    """Drop what ``python -O`` would drop from mitmproxy's per-message path; returns how many
    event-type guards were unwrapped."""
    if "__post_init__" in http.MessageData.__dict__:
        http.MessageData.__post_init__ = lambda self: None  # type: ignore[method-assign]
    import mitmproxy.proxy.layers as layers_package

    modules = [importlib.import_module(info.name) for info in pkgutil.walk_packages(layers_package.__path__, layers_package.__name__ + ".")]
    modules.append(importlib.import_module("mitmproxy.proxy.layer"))
    unwrapped = 0
    for module in modules:
        for cls in vars(module).values():
            if not inspect.isclass(cls) or not cls.__module__.startswith("mitmproxy."):
                continue
            for name, attr in list(vars(cls).items()):
                # mitmproxy.proxy.utils.expect wraps state handlers in this checker under __debug__
                if inspect.isfunction(attr) and attr.__code__.co_name == "_check_event_type" and hasattr(attr, "__wrapped__"):
                    setattr(cls, name, attr.__wrapped__)
                    unwrapped += 1
    return unwrapped


_IMMUTABLE = frozenset({str, int, float, bool, bytes, type(None)})


def _option_value_without_copy() -> None:
    """Reading an option deep-copies its value so that callers cannot change it in place; built-in
    addons read several options per flow. A value of an immutable type is returned as is, which is
    what ``copy.deepcopy`` returns for it anyway (other values are still copied)."""
    from mitmproxy import optmanager

    original = optmanager._Option.current

    def current(self: optmanager._Option) -> Any:
        value = self._default if self.value is optmanager.unset else self.value
        return value if type(value) in _IMMUTABLE else original(self)

    optmanager._Option.current = current  # type: ignore[method-assign]


def _headers_get_all(self: http.Headers, name: str | bytes) -> list[str]:
    """``Headers.get_all`` (and so every header read) as mitmproxy defines it — the name encoded
    like ``_always_bytes``, compared lower-cased, values decoded like ``_native``. mitmproxy and its
    addons read ~20 headers per flow, so the lower-cased index is built once per version of the
    fields: any change replaces the ``fields`` tuple, and the index is kept with the tuple it was
    built from (held, so its identity cannot be reused while the index lives)."""
    key = (name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")).lower()
    fields = self.fields
    cached = self.__dict__.get(_HEADER_INDEX)
    if cached is None or cached[0] is not fields:
        index: dict[bytes, list[str]] = {}
        for field, value in fields:
            index.setdefault(field.lower(), []).append(value.decode("utf-8", "surrogateescape"))
        cached = self.__dict__[_HEADER_INDEX] = (fields, index)
    values = cached[1].get(key)
    return values.copy() if values else []


_HEADER_INDEX = "_codex_index"


def _remember_pure_lookups() -> None:
    import functools

    from mitmproxy.addons import tlsconfig
    from mitmproxy.net.http import url

    # parse_authority raises ValueError for a malformed authority: exceptions are not cached, so
    # every such call still raises.
    url.parse_authority = functools.lru_cache(maxsize=4096)(url.parse_authority)  # type: ignore[assignment]
    original_crl_path = tlsconfig.TlsConfig.crl_path

    def crl_path(self: tlsconfig.TlsConfig) -> str:
        ca = self.certstore.default_ca
        cached = self.__dict__.get("_codex_crl_path")
        if cached is None or cached[0] is not ca:
            cached = self.__dict__["_codex_crl_path"] = (ca, original_crl_path(self))
        return cached[1]

    tlsconfig.TlsConfig.crl_path = crl_path  # type: ignore[method-assign]


def install() -> bool:
    """Install once per process; False (and mitmproxy left as it is) on an unproven version."""
    global installed
    if installed:
        return True
    if os.environ.get("CODEX_PROXY_STOCK_DISPATCH"):  # to compare with mitmproxy's own behaviour
        return False
    if VERSION not in PROVEN_VERSIONS:
        logger.warning("mitmproxy %s: running without codex-proxy's dispatch speed-ups (checked on %s)",
                       VERSION, ", ".join(sorted(PROVEN_VERSIONS)))
        return False
    for name in ("register", "remove", "add", "clear", "trigger_event", "trigger"):
        _original[name] = getattr(AddonManager, name)
    for name in ("register", "remove", "add", "clear"):
        setattr(AddonManager, name, _structural(name))
    AddonManager.trigger_event = trigger_event  # type: ignore[method-assign]
    AddonManager.trigger = trigger  # type: ignore[method-assign]
    proxy_server.ConnectionHandler.server_event = server_event  # type: ignore[method-assign]
    hooks.Hook.args = _hook_args  # type: ignore[method-assign]
    http.Headers.get_all = _headers_get_all  # type: ignore[method-assign]
    _skip_debug_checks()
    _option_value_without_copy()
    _remember_pure_lookups()
    mitmproxy_log.LegacyLogEvents.emit = _legacy_log_emit(mitmproxy_log.LegacyLogEvents.emit)  # type: ignore[method-assign]
    installed = True
    return True
