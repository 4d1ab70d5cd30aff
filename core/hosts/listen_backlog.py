"""A listen backlog sized for bursts of connections.

mitmproxy's listeners call ``asyncio.start_server`` without a backlog, so the kernel queues at most
100 connections that are not yet accepted. A coding agent fanning out (or a team's load balancer)
can open hundreds at once; while the event loop is busy, the connections beyond the queue are
dropped at the SYN and the client retries only a second later — a one-second stall before the
request is even read. The system's maximum (``socket.SOMAXCONN``) is used instead, by calling
``listen`` again on each listening socket (which changes its backlog): for listeners mitmproxy
starts from now on (right after its ``start_server``), and for those already listening when the
addon loads.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from mitmproxy import ctx
from mitmproxy.proxy import mode_servers

logger = logging.getLogger(__name__)

BACKLOG = socket.SOMAXCONN


class _Asyncio:
    """``asyncio`` as mitmproxy's mode servers see it: ``start_server`` with our backlog."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def start_server(*args: Any, **kwargs: Any) -> Any:
        # Called as mitmproxy calls it, then widened: whatever stands in for asyncio.start_server
        # (mitmproxy's own tests replace it) sees the same call.
        server = await asyncio.start_server(*args, **kwargs)
        if isinstance(server, asyncio.Server):
            widen(server)
        return server


def widen(server: asyncio.Server) -> None:
    for transport_socket in server.sockets:
        # A second socket object on the same open socket (a dup), so that closing it leaves ours.
        with socket.fromfd(transport_socket.fileno(), transport_socket.family, transport_socket.type) as dup:
            dup.listen(BACKLOG)


def install() -> None:
    """Listeners started from now on get the larger backlog."""
    if not isinstance(mode_servers.asyncio, _Asyncio):
        mode_servers.asyncio = _Asyncio()  # type: ignore[attr-defined]


class ListenBacklog:
    """Every TCP listener of this mitmproxy queues up to ``socket.SOMAXCONN`` new connections
    (``install`` covers those started later; ``running`` widens those already listening)."""

    def running(self) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        for instance in getattr(proxyserver, "servers", ()):
            for server in getattr(instance, "_servers", ()):
                if isinstance(server, asyncio.Server):
                    try:
                        widen(server)
                    except OSError as err:  # the listener keeps its backlog; nothing else changes
                        logger.debug("could not widen the listen backlog of %s: %s", instance, err)
