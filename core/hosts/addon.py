"""The mitmproxy addon: codex-proxy's gateway living inside ``mitmdump``/``mitmweb``.

Every call the gateway answers is an ordinary mitmproxy flow, whoever sent it — a base-URL client
on our port, a proxy client's call to one of the ``intercept.hosts``, a call on the Ollama port.
It runs the whole addon chain like any flow; when mitmproxy then connects upstream, the gateway is
that upstream (core/hosts/virtual.py): it reads the request as the chain left it, routes it
(core/gateway/routes.py), runs the turn (core/gateway/exchange.py) or the dashboard
(core/gateway/control.py), and writes the answer back for mitmproxy to deliver.

Credentials are taken off each of our flows in ``requestheaders``, before mitmweb's View first
holds it (script addons precede it in the chain), and travel beside the flow
(core/hosts/credentials.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from pathlib import Path
from typing import Any

import orjson
from mitmproxy import ctx, flow as mflow, hooks, http
from mitmproxy.addonmanager import Loader

from core.accounts.quota import usage_headers
from core.config import ConfigStore, default_data_dir
from core.gateway.control import ControlPlane
from core.gateway.exchange import Exchange
from core.gateway.ollama_routes import OllamaPlane
from core.gateway.responses_ws import ResponsesSocket
from core.gateway.routes import DataPlane, Job, SocketJob, ToControlPlane, is_control_plane_path, not_found, refuse
from core.gateway.sink import Sink
from core.hosts import base_url, dispatch, heap, listen_backlog, virtual
from core.hosts.websocket import ServerSocket
from core.hosts.body_budget import BodyBudget
from core.hosts.credentials import CredentialKeeper, ResponseSecrets
from core.hosts.flows import TOO_LARGE, client_request, is_addressed_to_us
from core.hosts.legs import LegRecorder, TurnLegs, UpstreamLegs, legs_wanted
from core.hosts.ollama_listener import OllamaListener
from core.hosts.proxy_mode import ProxyMode
from core.protocols.base import Reply, TooLarge, json_reply
from core.services import Services

logger = logging.getLogger(__name__)

_STARTUP_TIMEOUT = 30.0
_CONTROL_PLANE = "codex.control_plane"  # flow metadata: answered by the Flask app (may carry tokens)


class ListenDefaults:
    """Where the proxy listens: server.host and server.port (env PORT) unless mitmproxy's own
    ``--listen-host``/``-p`` or a custom ``--mode`` say otherwise. mitmproxy binds before scripts
    load, so a bare ``mitmdump -s`` first listens on its own default and is moved once running."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def running(self) -> None:
        options = ctx.options
        if options.mode != ["regular"] or options.has_changed("listen_host") or options.has_changed("listen_port"):
            return
        options.update(mode=[f"regular@{self.host}:{self.port}"])


def _annotator(flow: http.HTTPFlow, legs: TurnLegs | None, turn: int = 0) -> Any:
    """Show the turn's outcome on the flow (mitmweb's comment column; never secrets). A WebSocket's
    flow carries many turns: its comment is the latest one's, numbered."""

    def annotate(row: dict[str, Any]) -> None:
        tokens = f" tokens {row['input_tokens']}/{row['output_tokens']}" if row.get("input_tokens") is not None else ""
        upstream = f" legs={legs.count}" if legs is not None else ""
        flow.comment = (
            f"{f'turn {turn}: ' if turn else ''}{row['protocol']} {row['model']} account={row['account_id'] or '-'} status={row['status']}"
            f" ttfb={row['ttfb_ms']}ms total={row['duration_ms']}ms{tokens}{upstream}"
        )
        if row["status"] >= 400 or row.get("error"):
            flow.marked = ":warning:"
        flow.metadata["codex.turn"] = row

    return annotate


class CodexGateway:
    """The addon ``addons/codex.py`` loads; its sub-addons each handle one concern."""

    def __init__(self) -> None:
        self.services: Services | None = None
        self.data_plane: DataPlane | None = None
        self.ollama_plane: OllamaPlane | None = None
        self.ollama_addr: tuple[str, int] | None = None
        self.control: ControlPlane | None = None
        self.ollama: OllamaListener | None = None
        self.proxy_mode = ProxyMode(())
        self.listen: ListenDefaults | None = None  # set in load(), from server.host and server.port
        self.legs = UpstreamLegs()
        self.credentials = CredentialKeeper()
        self.response_secrets = ResponseSecrets()
        self.ready = asyncio.Event()
        self.failed: str | None = None
        self.max_body = 0  # server.max_body_size in bytes, set in load()
        self.addons: list[Any] = []
        self._serving: dict[str, asyncio.Task[None]] = {}  # flow id → the task answering it
        self._demo: Any = None  # the in-process fake backend in demo mode
        self._start_task: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def load(self, loader: Loader) -> None:
        loader.add_option("codex_data_dir", str, "", "Data folder (accounts, logs, local.yaml). Default: env CODEX_PROXY_DATA_DIR or <repo>/data.")
        loader.add_option("codex_demo", bool, False, "Serve from the bundled fake Codex backend with a demo account (no ChatGPT account needed).")
        dispatch.install()
        listen_backlog.install()
        cfg = ConfigStore(self._data_dir(), create=False).current  # the listen address, before anything binds
        base_url.install(self.claims, self._serve_flow, cfg.server.max_body_size)
        self.ollama = OllamaListener(cfg)
        self.proxy_mode = ProxyMode(cfg.intercept.hosts)
        self.listen = ListenDefaults(cfg.server.host, cfg.server.port)
        self.max_body = cfg.server.max_body_size
        self.addons = [self.listen, self.ollama, self.proxy_mode, listen_backlog.ListenBacklog(), BodyBudget(), LegRecorder(), self.legs]

    def configure(self, updated: set[str]) -> None:
        # Lazy: a CONNECT must not make mitmproxy dial (and fingerprint itself to) the real host.
        if "connection_strategy" in updated and not ctx.options.has_changed("connection_strategy"):
            ctx.options.update(connection_strategy="lazy")

    def running(self) -> None:
        # Sync on purpose: mitmproxy's script reload breaks when running() is a coroutine.
        virtual.install(self._serve, self.claims)
        self.response_secrets.install()
        view = ctx.master.addons.get("view")
        if view is not None:  # mitmweb kills a flow through its View, not through a hook
            view.sig_view_update.connect(self._flow_changed)
        if self._start_task is None:
            self._start_task = asyncio.get_running_loop().create_task(self._start())

    def done(self) -> None:
        virtual.uninstall()
        base_url.uninstall()
        view = ctx.master.addons.get("view")
        if view is not None:
            view.sig_view_update.disconnect(self._flow_changed)
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
        if self.control is not None:
            self.control.close()
        loop = asyncio.get_event_loop()
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
            from dashboard import create_app  # Flask import is slow: keep it off module import

            self.control = ControlPlane(await asyncio.to_thread(create_app, services))
            self.data_plane = DataPlane(services)
            if self.ollama is not None and (addr := await self.ollama.listening()) is not None:
                self.ollama_addr = addr
                self.ollama_plane = OllamaPlane(services, self.data_plane, listen_host=self.ollama.host)
            await asyncio.to_thread(self._write_runtime_file, services)
            heap.freeze_startup_heap()
            self.ready.set()
            self._announce(services)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            logger.exception("codex-proxy failed to start")
            self.ready.set()

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
        return self.ollama.main_listen_addrs() if self.ollama is not None else []

    def _write_runtime_file(self, services: Services) -> None:
        """Where this process listens, for scripts and tests that start it with ``-p 0``."""
        info = {"pid": os.getpid(), "listen": self._listen_addrs(), "ollama_listen": self.ollama_addr}
        path = services.cfg.data_dir / "runtime.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(info))
        os.replace(tmp, path)

    def _announce(self, services: Services) -> None:
        addrs = self._listen_addrs()
        host, port = addrs[0] if addrs else (services.cfg.server.host, services.cfg.server.port)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        key = services.cfg.server.proxy_api_key
        masked = f"{key[:6]}…{key[-2:]}" if key and len(key) > 10 else ("(none: open to anyone who can connect)" if not key else "***")
        logger.warning(
            "codex-proxy ready: base URL http://%s:%s/v1 · dashboard http://%s:%s/ · key %s (full key in %s) · %d account(s)%s",
            shown, port, shown, port, masked, services.config.local_path, len(services.pool.all()),
            " · DEMO MODE (fake backend)" if self._demo is not None else "",
        )
        if self.ollama_addr is not None:
            logger.warning("Ollama bridge: http://%s:%s (no key; loopback browser origins only)", *self.ollama_addr)

    # --- which flows are ours --------------------------------------------------------------------

    def _on_ollama(self, flow: http.HTTPFlow) -> bool:
        return self.ollama is not None and self.ollama.owns(flow)  # answered whatever its Host says

    def claims(self, flow: http.HTTPFlow) -> bool:
        """Asked when mitmproxy is about to connect upstream, so it judges the request as every
        addon left it (``map_remote`` may have sent it elsewhere)."""
        return is_addressed_to_us(flow) or self._on_ollama(flow) or self.proxy_mode.intercepts(flow)

    # --- hooks -----------------------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self.claims(flow):
            return
        self.credentials.take(flow)
        declared = flow.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            # Refused without holding the body: it streams through to our connection, which drops it.
            flow.metadata[TOO_LARGE] = int(declared)
            flow.request.stream = True
        else:
            flow.request.stream = False  # translation needs the whole body (stream_large_bodies must not apply)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is None and is_control_plane_path(flow.request.path.split("?", 1)[0]) and self.claims(flow):
            self.credentials.take_body(flow)  # tokens pasted into the management API: never on the flow

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or not virtual.is_virtual(flow.server_conn):
            return
        if "chunked" in response.headers.get("transfer-encoding", ""):
            response.stream = True  # each chunk reaches the client as the gateway writes it
        if flow.metadata.get(_CONTROL_PLANE):
            # Streamed, so the ``response`` hook runs after the client has the body, and what stays
            # on the flow (mitmweb, -w) can then lose its tokens (a full account export).
            response.stream = True
            self.response_secrets.take(response)

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(_CONTROL_PLANE) and flow.response is not None:
            self.response_secrets.redact_body(flow.response)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        """With nobody to show them to (no mitmweb, no ``-w``), a socket we serve keeps only its last
        message on the flow: hooks read that one, and a long session would otherwise hold every
        event of every turn until the client disconnects."""
        websocket = flow.websocket
        if websocket is not None and len(websocket.messages) > 1 and virtual.is_virtual(flow.server_conn) and not legs_wanted():
            del websocket.messages[:-1]

    def update(self, flows: list[mflow.Flow]) -> None:
        for changed in flows:
            self._flow_changed(changed)

    def _flow_changed(self, flow: mflow.Flow) -> None:
        """A killed flow: stop its turn (and the upstream call) now. A flow killed while
        intercepted is also let go: mitmproxy 12.3 leaves it waiting for a resume that never comes
        (``Flow.kill`` clears ``intercepted`` without waking the waiter), so its client would hang."""
        if flow.error is None or flow.error.msg != mflow.Error.KILLED_MESSAGE:
            return
        waiting = getattr(flow, "_resume_event", None)
        if waiting is not None and not waiting.is_set():
            waiting.set()
        serving = self._serving.pop(flow.id, None)
        if serving is not None:
            serving.cancel()

    # --- the upstream mitmproxy connects to ------------------------------------------------------

    async def _serve(self, flow: http.HTTPFlow, conn: virtual.VirtualConnection) -> None:
        await self._serve_flow(flow, virtual.Answer(conn, flow.request.method))

    async def _serve_flow(self, flow: http.HTTPFlow, answer: virtual.Answer | base_url.ClientAnswer) -> None:
        """Answer one flow of ours, on whichever connection it came (the virtual upstream of
        mitmproxy's own path, or a base-URL connection)."""
        task = asyncio.current_task()
        assert task is not None
        self._serving[flow.id] = task
        try:
            await self._answer(flow, answer)
        except asyncio.CancelledError:
            if answer.client_gone or not flow.error or flow.error.msg != mflow.Error.KILLED_MESSAGE:
                raise  # the client left: mitmproxy closed the connection
            # Killed: the upstream call is aborted. End the answer cleanly so mitmproxy completes
            # the flow and applies the kill itself (the flow keeps its "killed" error).
            task.uncancel()
            await (answer.end() if answer.started else answer.reply(Reply(499, b"", {})))
        except Exception:
            logger.exception("codex-proxy failed answering %s %s", flow.request.method, flow.request.pretty_url)
            if not answer.started:
                await answer.reply(json_reply(502, {"error": {"message": "internal proxy error", "type": "server_error"}}))
            else:
                answer.abort()
        finally:
            self._serving.pop(flow.id, None)

    async def _answer(self, flow: http.HTTPFlow, answer: virtual.Answer | base_url.ClientAnswer) -> None:
        on_ollama = self._on_ollama(flow)
        addressed = on_ollama or is_addressed_to_us(flow)
        credentials = self.credentials.pop(flow)
        if not self.ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), _STARTUP_TIMEOUT)
        services, data_plane, control = self.services, self.data_plane, self.control
        plane = self.ollama_plane if on_ollama else data_plane
        if plane is None or services is None or control is None:
            message = f"codex-proxy is not ready: {self.failed or 'still starting'}"
            error = message if on_ollama else {"message": message, "type": "server_error", "param": None, "code": "not_ready"}
            await answer.reply(json_reply(503, {"error": error}))
            return
        if addressed:
            request = credentials.applied_to(client_request(flow))
        else:
            request = credentials.applied_to(client_request(flow, self.proxy_mode.route_path(flow), self.proxy_mode.trusts(flow)))
        if flow.metadata.get(TOO_LARGE) or len(request.body) > self.max_body:
            size = flow.metadata.get(TOO_LARGE) or len(request.body)
            error = TooLarge(f"Request body of {size} bytes is over this proxy's limit of {self.max_body} bytes (server.max_body_size)",
                             code="request_too_large")
            await answer.reply(plane.refuse(request, error) if isinstance(plane, OllamaPlane) else refuse(request, error))
            return
        outcome = plane.dispatch(request)
        if isinstance(outcome, ToControlPlane) and not addressed:
            outcome = not_found(request)  # the dashboard lives on our own address only
        if isinstance(outcome, Reply):
            await answer.reply(outcome)
        elif isinstance(outcome, ToControlPlane):
            flow.metadata[_CONTROL_PLANE] = True
            await control.serve(control.environ(request, flow.request.scheme, flow.request.host_header or ""), answer)
        elif isinstance(outcome, Job):
            await self._run_job(flow, services, outcome, answer)
        elif isinstance(outcome, SocketJob):
            socket = ServerSocket.accept(answer, flow.request, usage_headers(services.pooled_quota()))
            session = ResponsesSocket(services, socket, functools.partial(data_plane.socket_turn, outcome),
                                      functools.partial(self._run_job, flow, services))
            await session.serve()
            await socket.close()

    async def _run_job(self, flow: http.HTTPFlow, services: Services, job: Job, sink: Sink, turn: int = 0) -> None:
        job.tap = legs = self.legs.tap(flow, services.cfg.api.base_url)
        job.annotate = _annotator(flow, legs, turn)
        await Exchange(services, job, sink).run()
        if legs is not None:  # someone is looking: show the comment even if the flow ended first
            ctx.master.addons.trigger(hooks.UpdateHook([flow]))
