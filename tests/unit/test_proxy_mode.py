"""Proxy mode decisions (core/intercept.py) with mitmproxy's own test helpers."""

from __future__ import annotations

import re

from mitmproxy.addons.proxyauth import ProxyAuth
from mitmproxy.test import taddons, tflow

from core.gateway.clients import is_loopback_address
from core.hosts.proxy_mode import ProxyMode, allow_hosts_pattern

HOSTS = ("api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com", "chatgpt.com")


def test_allow_hosts_pattern_matches_exactly_the_api_hosts() -> None:
    pattern = re.compile(allow_hosts_pattern(HOSTS), re.IGNORECASE)
    for host in ("api.openai.com:443", "API.Anthropic.com:443", "chatgpt.com:443", "chatgpt.com"):
        assert pattern.search(host), host
    for host in ("openai.com:443", "xapi.openai.com:443", "api.openai.com.evil.test:443", "auth.openai.com:443",
                 "chatgpt.com.evil:443", "127.0.0.1:8080"):
        assert not pattern.search(host), host
    assert not re.search(allow_hosts_pattern(()), "api.openai.com:443")


def test_allow_hosts_are_derived_unless_the_user_chose() -> None:
    mode = ProxyMode(HOSTS)
    with taddons.context(mode) as tctx:
        tctx.configure(mode)
        assert tctx.options.allow_hosts == [allow_hosts_pattern(HOSTS)]
    for option, value in (("allow_hosts", ["^example\\.com"]), ("ignore_hosts", [".*\\.internal"])):
        mode = ProxyMode(HOSTS)
        with taddons.context() as tctx:
            tctx.options.update(**{option: value})
            tctx.master.addons.add(mode)
            tctx.configure(mode)
            assert getattr(tctx.options, option) == value
            assert tctx.options.allow_hosts == ([] if option == "ignore_hosts" else value)


def test_only_proxy_requests_for_api_hosts_are_intercepted() -> None:
    mode = ProxyMode(HOSTS)
    flow = tflow.tflow()
    flow.client_conn.sockname = ("127.0.0.1", 8080)
    flow.request.host, flow.request.port = "api.openai.com", 443
    assert mode.intercepts(flow)
    flow.request.host = "example.com"
    assert not mode.intercepts(flow)
    flow.request.host, flow.request.port = "127.0.0.1", 8080  # a base-URL client: addressed to us instead
    assert not mode.intercepts(flow)


def test_chatgpt_codex_paths_map_to_our_routes() -> None:
    flow = tflow.tflow()
    flow.request.host, flow.request.path = "chatgpt.com", "/backend-api/codex/responses?x=1"
    assert ProxyMode.route_path(flow) == "/responses"
    flow.request.path = "/backend-api/codex/responses/compact"
    assert ProxyMode.route_path(flow) == "/responses/compact"
    flow.request.path = "/backend-api/wham/usage"
    assert ProxyMode.route_path(flow) == "/backend-api/wham/usage"  # not ours: a 404, never forwarded
    flow.request.host, flow.request.path = "api.openai.com", "/v1/chat/completions"
    assert ProxyMode.route_path(flow) == "/v1/chat/completions"


def test_trust_follows_the_client_address_or_proxyauth() -> None:
    mode = ProxyMode(HOSTS)
    with taddons.context(mode, ProxyAuth()) as tctx:
        flow = tflow.tflow()
        flow.client_conn.peername = ("127.0.0.1", 50000)
        assert mode.trusts(flow)
        flow.client_conn.peername = ("::ffff:127.0.0.1", 50000)
        assert mode.trusts(flow)
        flow.client_conn.peername = ("192.0.2.7", 50000)
        assert not mode.trusts(flow)
        tctx.configure(mode, proxyauth="user:pass")  # mitmproxy itself authenticates every proxy client
        assert mode.trusts(flow)


def test_is_loopback_address() -> None:
    assert all(map(is_loopback_address, ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1")))
    assert not any(map(is_loopback_address, ("192.0.2.7", "::ffff:192.0.2.7", "", "localhost", "not an ip")))
