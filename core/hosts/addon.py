"""The mitmproxy addons: codex-proxy's gateway living inside ``mitmdump``/``mitmweb``.

``CodexGateway`` answers requests addressed to the proxy's own port (base-URL clients) and, in
proxy mode, proxy clients' requests for the API hosts in ``intercept.hosts`` (core/intercept.py):
plain JSON answers are made in the ``request`` hook, streams go through the loopback bridge
(addon-made bodies cannot stream, mitmproxy-facts.md §2) and the dashboard/management API is
forwarded to the Flask control plane. Everything else passes through mitmproxy untouched.
Credentials are taken off every flow it answers before mitmweb sees it (core/redact.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from mitmproxy import ctx, hooks, http
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Client

from core.bridge import Bridge
from core.config import ConfigStore, default_data_dir
from core.control_plane import SEALED_HEADER, ControlPlaneServer
from core.gateway.routes import DataPlane, Job, ToControlPlane, is_control_plane_path, not_found
from core.direct import DirectPath
from core.gateway.exchange import Exchange
from core.front_door import FrontDoor
from core.gateway.ollama_routes import OllamaPlane
from core.hosts.ollama_listener import OllamaListener
from core.hosts.flows import (
    CLIENT_ADDR_HEADER,
    client_address,
    client_request,
    is_addressed_to_us,
    redirect_to_loopback,
    respond,
    restore_original,
    was_redirected,
)
from core.hosts.proxy_mode import ProxyMode
from core.hosts.legs import LegRecorder, TurnLegs, UpstreamLegs
from core.protocols.base import ClientRequest, Reply, json_reply
from core.gateway.redaction import REDACTED, redact_json
from core.hosts.credentials import CredentialKeeper
from core.hosts.body_budget import BodyBudget
from core.services import Services

logger = logging.getLogger(__name__)

_STREAMED = "codex.streamed"  # flow metadata: the bridge answers this flow with a stream
_CONTROL_PLANE = "codex.control_plane"  # flow metadata: answered by the Flask app (may carry tokens)
_STARTUP_TIMEOUT = 30.0


INTERNAL_MODE = "regular@127.0.0.1:0"  # mitmproxy's own listener behind the front door


class ListenDefaults:
    """Where the proxy listens: config (default 127.0.0.1:8080, env PORT) unless mitmproxy's own
    ``--listen-host``/``-p`` were given; a custom ``--mode`` is left as the user set it.

    With the front door (``server.front_door``, default on) that public address belongs to
    core/front_door.py and mitmproxy's listener moves to a loopback port behind it; without it,
    mitmproxy listens there itself. mitmproxy binds before scripts load, so a bare ``mitmdump -s``
    first listens on its own default and is moved once running."""

    def __init__(self, host: str, port: int, front_door: bool) -> None:
        self.host = host
        self.port = port
        self.front_door = front_door
        self.public: tuple[str, int] | None = None  # set when the front door is to take this address

    def running(self) -> None:
        options = ctx.options
        if options.mode != ["regular"]:
            return
        chosen = options.has_changed("listen_host") or options.has_changed("listen_port")
        host = options.listen_host if options.has_changed("listen_host") else self.host
        port = options.listen_port if options.has_changed("listen_port") else self.port
        if self.front_door:
            self.public = (host, port)
            options.update(mode=[INTERNAL_MODE])
        elif not chosen:
            options.update(mode=[f"regular@{host}:{port}"])

    async def mitmproxy_address(self, timeout: float = 10.0) -> tuple[str, int]:
        """Where mitmproxy's own (internal) listener is, once it has moved there."""
        proxyserver = ctx.master.addons.get("proxyserver")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for instance in proxyserver.servers:
                if instance.mode.full_spec == INTERNAL_MODE and instance.listen_addrs:
                    host, port = instance.listen_addrs[0][:2]
                    return str(host), int(port)
            await asyncio.sleep(0.01)
        raise RuntimeError("mitmproxy's listener did not move behind the front door")


class FlowSink:
    """An Exchange sink that answers in the ``request`` hook itself (non-streamed answers)."""

    def __init__(self, flow: http.HTTPFlow) -> None:
        self._flow = flow

    async def reply(self, reply: Reply) -> None:
        respond(self._flow, reply)

    async def start(self, status: int, headers: dict[str, str]) -> None:
        raise RuntimeError("a hook answer cannot stream; streamed jobs go through the bridge")

    async def write(self, data: bytes) -> None:
        raise RuntimeError("a hook answer cannot stream")

    async def end(self) -> None:
        raise RuntimeError("a hook answer cannot stream")


def _annotator(flow: http.HTTPFlow, legs: TurnLegs | None) -> Any:
    """Show the turn's outcome on the flow (mitmweb's comment column; never secrets)."""

    def annotate(row: dict[str, Any]) -> None:
        tokens = f" tokens {row['input_tokens']}/{row['output_tokens']}" if row.get("input_tokens") is not None else ""
        upstream = f" legs={legs.count}" if legs is not None else ""
        flow.comment = (
            f"{row['protocol']} {row['model']} account={row['account_id'] or '-'} status={row['status']}"
            f" ttfb={row['ttfb_ms']}ms total={row['duration_ms']}ms{tokens}{upstream}"
        )
        if row["status"] >= 400 or row.get("error"):
            flow.marked = ":warning:"
        flow.metadata["codex.turn"] = row
        ctx.master.addons.trigger(hooks.UpdateHook([flow]))  # a streamed turn ends after its last hook

    return annotate


class CodexGateway:
    """Answers the gateway's own API on the proxy port."""

    def __init__(self) -> None:
        self.services: Services | None = None
        self.data_plane: DataPlane | None = None
        self.ollama: OllamaListener | None = None
        self.ollama_plane: OllamaPlane | None = None
        self.ollama_addr: tuple[str, int] | None = None
        self.bridge: Bridge | None = None
        self.control: ControlPlaneServer | None = None
        self.direct: DirectPath | None = None
        self.front_door: FrontDoor | None = None
        self.listen = ListenDefaults("127.0.0.1", 8080, front_door=False)
        self.ready = asyncio.Event()
        self.failed: str | None = None
        self._demo: Any = None  # the in-process fake backend in demo mode
        self._start_task: asyncio.Task[None] | None = None
        self._inflight: dict[str, set[asyncio.Task[Any]]] = {}
        self.credentials = CredentialKeeper()
        self.legs = UpstreamLegs()
        self.log_requests = False  # front-door requests in the event log (core/direct.py)
        self.proxy_mode = ProxyMode(())
        self.addons: list[Any] = []

    # --- lifecycle -------------------------------------------------------------------------------

    def load(self, loader: Loader) -> None:
        loader.add_option("codex_data_dir", str, "", "Data folder (accounts, logs, local.yaml). Default: env CODEX_PROXY_DATA_DIR or <repo>/data.")
        loader.add_option("codex_demo", bool, False, "Serve from the bundled fake Codex backend with a demo account (no ChatGPT account needed).")
        cfg = ConfigStore(self._data_dir(), create=False).current  # the listen address, before anything binds
        self.ollama = OllamaListener(cfg)
        self.proxy_mode = ProxyMode(cfg.get("intercept.hosts") or ())
        self.listen = ListenDefaults(str(cfg.get("server.host") or "127.0.0.1"), int(cfg.get("server.port") or 8080),
                                     front_door=bool(cfg.get("server.front_door", True)))
        self.addons = [
            self.listen,
            self.ollama,  # after ListenDefaults: it appends to the mode list that one sets
            self.proxy_mode,
            BodyBudget(),
            LegRecorder(),
            self.legs,
        ]

    def configure(self, updated: set[str]) -> None:
        # Lazy: a CONNECT must not make mitmproxy dial (and fingerprint itself to) the real host.
        if "connection_strategy" in updated and not ctx.options.has_changed("connection_strategy"):
            ctx.options.update(connection_strategy="lazy")
        if "termlog_verbosity" in updated:
            self.log_requests = ctx.options.termlog_verbosity == "debug"  # read here: options are copied on access

    def running(self) -> None:
        # Sync on purpose: an async running() breaks mitmproxy's script reload (facts §5).
        if self._start_task is None:
            self._start_task = asyncio.get_running_loop().create_task(self._start())

    def done(self) -> None:
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
        for tasks in self._inflight.values():
            for task in tasks:
                task.cancel()
        if self.control is not None:
            self.control.stop()
        loop = asyncio.get_event_loop()
        if self.front_door is not None:
            loop.create_task(self.front_door.stop())
        if self.direct is not None:
            loop.create_task(self.direct.close())
        if self.bridge is not None:
            loop.create_task(self.bridge.stop())
        if self.services is not None:
            services = self.services
            if services.transport is not None:
                loop.create_task(services.transport.close())
            services.close_sync()  # flushes the request log; shutdown only
        if self._demo is not None:
            loop.create_task(self._demo.stop())

    def _data_dir(self) -> Path:
        option = ctx.options.codex_data_dir if hasattr(ctx.options, "codex_data_dir") else ""
        return Path(option).expanduser().resolve() if option else default_data_dir()

    async def _start(self) -> None:
        try:
            runtime: dict[str, Any] = {}
            data_dir = self._data_dir()
            if ctx.options.codex_demo:
                runtime, data_dir = await self._start_demo(data_dir)
            self.services = services = await asyncio.to_thread(Services, data_dir, runtime)
            await services.start()
            if self._demo is not None:
                await asyncio.to_thread(self._add_demo_account, services)
            self.bridge = Bridge(services)
            await self.bridge.start()
            from dashboard import create_app  # Flask import is slow: keep it off module import

            self.control = ControlPlaneServer(await asyncio.to_thread(create_app, services))
            self.control.start()
            self.data_plane = DataPlane(services)
            if self.listen.public is not None:
                await self._open_front_door(services, self.listen.public)
            if self.ollama is not None and (addr := await self.ollama.listening()) is not None:
                self.ollama_addr = addr
                self.ollama_plane = OllamaPlane(services, self.data_plane, listen_host=self.ollama.host)
            await asyncio.to_thread(self._write_runtime_file, services)
            self.ready.set()
            self._announce(services)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            logger.exception("codex-proxy failed to start")
            self.ready.set()

    async def _open_front_door(self, services: Services, public: tuple[str, int]) -> None:
        assert self.data_plane is not None and self.control is not None
        self.direct = DirectPath(services, self.data_plane, self.control.port, self.legs, _annotator, lambda: self.log_requests)
        internal = await self.listen.mitmproxy_address()
        door = FrontDoor(web.Server(self.direct.handle, handler_cancellation=True, access_log=None), lambda: internal)
        await door.start(*public)
        self.front_door = door

    async def _start_demo(self, data_dir: Path) -> tuple[dict[str, Any], Path]:
        from codex_fake import FakeCodex

        self._demo = FakeCodex()
        base = await self._demo.start(host="127.0.0.1", port=0)
        # Demo data stays apart from real accounts unless a data folder was named explicitly.
        if not ctx.options.codex_data_dir and not os.environ.get("CODEX_PROXY_DATA_DIR"):
            data_dir = data_dir / "demo"
        return {"api": {"base_url": base + "/backend-api"}, "auth": {"oauth_issuer": base}}, data_dir

    @staticmethod
    def _add_demo_account(services: Services) -> None:
        from codex_fake import mint_access_token, mint_refresh_token

        token = mint_access_token(account_id="demo-account", plan="plus", email="demo@example.com", expires_in=30 * 24 * 3600)
        refresh = mint_refresh_token("demo-account", plan="plus", email="demo@example.com")
        services.accounts.add({"token": token, "refreshToken": refresh, "label": "demo (fake backend)"})

    def _listen_addrs(self) -> list[tuple[str, int]]:
        if self.front_door is not None:
            return self.front_door.addresses
        return self.ollama.main_listen_addrs() if self.ollama is not None else []

    def _write_runtime_file(self, services: Services) -> None:
        """Where this process listens, for scripts and tests that start it with ``-p 0``."""
        assert self.bridge is not None and self.control is not None
        info = {"pid": os.getpid(), "listen": self._listen_addrs(), "bridge_port": self.bridge.port, "control_port": self.control.port,
                "ollama_listen": self.ollama_addr, "mitmproxy_listen": self.ollama.main_listen_addrs() if self.ollama else []}
        path = services.cfg.data_dir / "runtime.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(info))
        os.replace(tmp, path)

    def _announce(self, services: Services) -> None:
        addrs = self._listen_addrs()
        host, port = addrs[0] if addrs else ("127.0.0.1", 8080)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        key = services.cfg.proxy_api_key
        masked = f"{key[:6]}…{key[-2:]}" if key and len(key) > 10 else ("(none: open to anyone who can connect)" if not key else "***")
        logger.warning(
            "codex-proxy ready: base URL http://%s:%s/v1 · dashboard http://%s:%s/ · key %s (full key in %s) · %d account(s)%s",
            shown, port, shown, port, masked, services.config.local_path, len(services.pool.all()),
            " · DEMO MODE (fake backend)" if self._demo is not None else "",
        )
        if self.ollama_addr is not None:
            logger.warning("Ollama bridge: http://%s:%s (no key; loopback browser origins only)", *self.ollama_addr)

    # --- hooks -----------------------------------------------------------------------------------

    def _on_ollama(self, flow: http.HTTPFlow) -> bool:
        return self.ollama is not None and self.ollama.owns(flow)  # answered whatever its Host says

    def _answers(self, flow: http.HTTPFlow) -> bool:
        return is_addressed_to_us(flow) or self._on_ollama(flow) or self.proxy_mode.intercepts(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # Runs before mitmweb's View first shows the flow: script addons precede it in the chain.
        if self._answers(flow):
            self.credentials.take(flow)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None or not self._answers(flow):
            return
        on_ollama = self._on_ollama(flow)
        addressed = on_ollama or is_addressed_to_us(flow)
        if addressed and is_control_plane_path(flow.request.path.split("?", 1)[0]):
            self.credentials.take_body(flow)  # before any await: mitmweb must never see pasted tokens
        credentials = self.credentials.pop(flow)
        if not self.ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), _STARTUP_TIMEOUT)
        plane = self.ollama_plane if on_ollama else self.data_plane
        if plane is None or self.bridge is None or self.control is None or self.services is None:
            message = f"codex-proxy is not ready: {self.failed or 'still starting'}"
            error = message if on_ollama else {"message": message, "type": "server_error", "param": None, "code": "not_ready"}
            respond(flow, json_reply(503, {"error": error}))
            return
        request = credentials.applied_to(client_request(flow))
        if not addressed:
            request = self._proxied(flow, request)
        outcome = plane.dispatch(request)
        if isinstance(outcome, ToControlPlane) and not addressed:
            outcome = not_found(request)  # the dashboard lives on our own address only
        if isinstance(outcome, Reply):
            respond(flow, outcome)
        elif isinstance(outcome, ToControlPlane):
            flow.request.headers[CLIENT_ADDR_HEADER] = client_address(flow)
            flow.request.headers[SEALED_HEADER] = self.control.unsealer.seal(credentials)
            flow.metadata[_CONTROL_PLANE] = True
            redirect_to_loopback(flow, self.control.port, keep_body=True)
        elif isinstance(outcome, Job):
            outcome.tap = legs = self.legs.tap(flow, str(self.services.cfg.get("api.base_url") or ""))
            outcome.annotate = _annotator(flow, legs)
            if outcome.prepared.turn.stream and not outcome.compact:
                flow.metadata[_STREAMED] = True
                redirect_to_loopback(flow, self.bridge.port, self.bridge.submit(outcome), keep_body=False)
            else:
                await self._answer_in_hook(flow, outcome)

    def _proxied(self, flow: http.HTTPFlow, request: ClientRequest) -> ClientRequest:
        """A proxy client's call to a real API host, as our own route sees it (README "Proxy mode")."""
        return dataclasses.replace(request, path=self.proxy_mode.route_path(flow), trusted=self.proxy_mode.trusts(flow))

    async def _answer_in_hook(self, flow: http.HTTPFlow, job: Job) -> None:
        assert self.services is not None
        task = asyncio.current_task()
        assert task is not None
        tasks = self._inflight.setdefault(flow.client_conn.id, set())
        tasks.add(task)
        try:
            await Exchange(self.services, job, FlowSink(flow)).run()
        except asyncio.CancelledError:
            flow.kill()  # the client left; the upstream call was aborted with this task
        finally:
            tasks.discard(task)
            if not tasks:
                self._inflight.pop(flow.client_conn.id, None)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if not was_redirected(flow) or flow.response is None:
            return
        if flow.metadata.pop(_STREAMED, False) or "text/event-stream" in flow.response.headers.get("content-type", ""):
            flow.response.stream = True
        elif flow.metadata.get(_CONTROL_PLANE):
            # Streamed, so the ``response`` hook below runs after the client has the body: what
            # stays on the flow (mitmweb, -w) can then lose its tokens (a full account export).
            flow.response.stream = True
        restore_original(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        if not flow.metadata.pop(_CONTROL_PLANE, False) or flow.response is None:
            return
        if "set-cookie" in flow.response.headers:  # the dashboard session: already with the browser
            flow.response.headers.set_all("set-cookie", [REDACTED] * len(flow.response.headers.get_all("set-cookie")))
        if flow.response.raw_content and (redacted := redact_json(flow.response.get_content(strict=False) or b"")) is not None:
            flow.response.content = redacted

    def error(self, flow: http.HTTPFlow) -> None:
        if self.bridge is not None and was_redirected(flow):
            self.bridge.discard(flow.request.path)
            restore_original(flow)

    def client_connected(self, client: Client) -> None:
        if self.front_door is not None and client.peername and (origin := self.front_door.origin_of(client.peername)):
            client.peername, client.sockname = origin  # a proxy client the front door handed over

    def client_disconnected(self, client: Client) -> None:
        for task in self._inflight.pop(client.id, ()):
            task.cancel()
