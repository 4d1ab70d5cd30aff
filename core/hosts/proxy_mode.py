"""Proxy mode: clients that cannot change their base URL use the gateway as their HTTPS proxy.

Their calls to the API hosts in ``intercept.hosts`` are decrypted with mitmproxy's CA and answered
by the same routes as base-URL calls; every other host is tunnelled untouched and never decrypted,
because mitmproxy's ``allow_hosts`` is derived from the same list (unless the user passed
``--allow-hosts`` or ``--ignore-hosts``). An intercepted request is always answered here, never
forwarded: the credential it carries (an sk- key, an Anthropic key, a ChatGPT token) belongs to the
real API and goes nowhere.

Trust (README "Proxy mode"): the client's own credential is not our proxy key, so it cannot
authenticate it. A loopback client is trusted like the dashboard trusts this machine; so is any
client when mitmproxy's ``--proxyauth`` guards the listener. Anyone else must present the proxy key
as its API key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mitmproxy import ctx, http

from core.gateway.clients import is_loopback_address
from core.hosts.flows import client_address, is_addressed_to_us

# Codex CLI/Desktop signed in with ChatGPT call the backend directly; its API lives under this prefix,
# and what follows (``/responses``, ``/responses/compact``) is our own route.
PATH_PREFIXES = {"chatgpt.com": "/backend-api/codex"}


def allow_hosts_pattern(hosts: Iterable[str]) -> str:
    """One regex for mitmproxy's ``allow_hosts`` (matched against ``host:port``)."""
    names = sorted({host.lower() for host in hosts})
    if not names:
        return "(?!)"  # matches nothing: every TLS connection is tunnelled
    return r"^(?:" + "|".join(re.escape(name) for name in names) + r")(?::\d+)?$"


class ProxyMode:
    """Which proxy-client requests the gateway answers, and mitmproxy's TLS scope to match."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self.hosts = frozenset(host.lower() for host in hosts)
        self._scoped = False

    def configure(self, updated: set[str]) -> None:
        if self._scoped:
            return
        self._scoped = True  # once, at script load: later changes are the user's own
        if not ctx.options.allow_hosts and not ctx.options.ignore_hosts:
            ctx.options.update(allow_hosts=[allow_hosts_pattern(self.hosts)])

    def intercepts(self, flow: http.HTTPFlow) -> bool:
        """A proxy client's request for one of the API hosts."""
        return flow.request.pretty_host.lower() in self.hosts and not is_addressed_to_us(flow)

    @staticmethod
    def route_path(flow: http.HTTPFlow) -> str:
        path = flow.request.path.split("?", 1)[0]
        prefix = PATH_PREFIXES.get(flow.request.pretty_host.lower())
        if prefix and path.startswith(prefix + "/"):
            return path[len(prefix):]
        return path

    @staticmethod
    def trusts(flow: http.HTTPFlow) -> bool:
        return is_loopback_address(client_address(flow)) or bool(ctx.options.proxyauth)
