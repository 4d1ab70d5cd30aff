"""The Ollama bridge's listener: one more mitmproxy listen mode next to the main one.

Being a mitmproxy listener (not a separate server) means Ollama traffic runs through the same
hooks and shows up in mitmweb like everything else. Every request that arrives on it belongs to
the Ollama route table (``core.gateway.ollama_routes``); nothing is ever forwarded from it, and
``CONNECT`` is refused, so even a listener bound beyond loopback is no open proxy.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from mitmproxy import ctx, exceptions, http
from mitmproxy.proxy.mode_specs import ProxyMode

from core.settings import Settings

logger = logging.getLogger(__name__)


class OllamaListener:
    def __init__(self, cfg: Settings) -> None:
        self.host = cfg.ollama.host
        self.port = cfg.ollama.port
        self.spec: str | None = None
        if cfg.ollama.enabled:
            self.spec = ProxyMode.parse(f"regular@{self.host}:{self.port}").full_spec

    def running(self) -> None:
        if self.spec is None or self.spec in ctx.options.mode:
            return
        if problem := _cannot_bind(self.host, self.port):
            # Checked first: mitmdump exits on any error logged while starting, and a port already
            # taken (say by a real Ollama) must not take the whole proxy down.
            logger.warning("Ollama bridge not started: cannot listen on %s:%s (%s); the main proxy runs on", self.host, self.port, problem)
            self.spec = None
            return
        try:
            ctx.options.update(mode=[*ctx.options.mode, self.spec])
        except exceptions.OptionsError as error:  # e.g. the same address as the main listener
            logger.error("Ollama bridge not started on %s:%s: %s", self.host, self.port, error)
            self.spec = None

    def owns(self, flow: http.HTTPFlow) -> bool:
        return self.spec is not None and flow.client_conn.proxy_mode.full_spec == self.spec

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if self.owns(flow):
            flow.response = http.Response.make(405, b'{"error": "the Ollama bridge is not a proxy"}', {"content-type": "application/json"})

    async def listening(self, timeout: float = 10.0) -> tuple[str, int] | None:
        """The address the listener bound, once it has (None if it could not, e.g. port taken)."""
        if self.spec is None:
            return None
        proxyserver = ctx.master.addons.get("proxyserver")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            instance = next((s for s in proxyserver.servers if s.mode.full_spec == self.spec), None)
            if instance is not None and instance.listen_addrs:
                host, port = instance.listen_addrs[0][:2]
                return str(host), int(port)
            if instance is not None and not proxyserver.servers.is_updating and instance.last_exception is not None:
                break
            await asyncio.sleep(0.02)
        logger.error("Ollama bridge is not listening on %s:%s (see the error above); the main proxy runs on", self.host, self.port)
        return None

    def main_listen_addrs(self) -> list[tuple[str, int]]:
        """Where the main proxy listens: every listener but this one."""
        proxyserver = ctx.master.addons.get("proxyserver")
        if proxyserver is None:
            return []
        return [(str(a[0]), int(a[1])) for s in proxyserver.servers if s.mode.full_spec != self.spec for a in s.listen_addrs]


def _cannot_bind(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None (probed the way asyncio's server binds)."""
    if port == 0:
        return None
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError as error:
        return error.strerror or str(error)
    return None
