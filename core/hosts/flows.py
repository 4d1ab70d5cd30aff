"""Where mitmproxy flows meet the host-independent core: reading a flow as a ``ClientRequest``,
answering it with a ``Reply``, and pointing it at a loopback server (bridge or control plane) and
back, so mitmweb keeps showing the client's own request."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mitmproxy import http

from core.protocols.base import ClientRequest, Reply

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
CLIENT_ADDR_HEADER = "x-codex-client-addr"  # set by the gateway for the control plane; never trusted from clients
_REWRITE_KEY = "codex.original_request"


def is_addressed_to_us(flow: http.HTTPFlow) -> bool:
    """True for a base-URL client (origin-form request to our listener), not a proxy client's
    request for some other host. ``listen_port`` options lie under ``--mode regular@PORT``, so
    compare with the socket the client actually connected to."""
    sockname = flow.client_conn.sockname
    if not sockname:
        return False
    request = flow.request
    return request.port == sockname[1] and (request.host in LOOPBACK_NAMES or request.host == sockname[0])


def client_address(flow: http.HTTPFlow) -> str:
    peer = flow.client_conn.peername
    return str(peer[0]) if peer else ""


def is_loopback_address(address: str) -> bool:
    """127.0.0.0/8, ::1 and their IPv4-mapped form; anything unparsable is not loopback."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def client_request(flow: http.HTTPFlow) -> ClientRequest:
    request = flow.request
    try:
        body = request.get_content(strict=True) or b""
    except ValueError:  # undecodable content-encoding: hand over the raw bytes, the JSON parse will say why
        body = request.raw_content or b""
    return ClientRequest(
        method=request.method,
        path=request.path.split("?", 1)[0],
        query=request.query,
        headers=request.headers,
        body=body,
        client_addr=client_address(flow),
    )


def respond(flow: http.HTTPFlow, reply: Reply) -> None:
    flow.response = http.Response.make(reply.status, reply.body, reply.headers)


@dataclass(slots=True)
class _Original:
    scheme: str
    host: str
    port: int
    path: str
    headers: http.Headers | None  # only kept when the body was left behind
    content: bytes | None


def redirect_to_loopback(flow: http.HTTPFlow, port: int, path: str | None = None, *, keep_body: bool) -> None:
    """Send the flow to our own loopback server; ``restore_original`` undoes it once the answer's
    headers are in. The bridge already holds the translated job, so it need not get the body."""
    request = flow.request
    flow.metadata[_REWRITE_KEY] = _Original(
        request.scheme, request.host, request.port, request.path,
        None if keep_body else request.headers.copy(),
        None if keep_body else request.raw_content,
    )
    host_header = request.host_header
    request.scheme, request.host, request.port = "http", "127.0.0.1", port
    request.host_header = host_header  # the app behind builds its URLs from the client's Host
    if path is not None:
        request.path = path
    if not keep_body:
        for name in ("content-encoding", "transfer-encoding"):
            request.headers.pop(name, None)
        request.headers["content-length"] = "0"
        request.raw_content = b""


def was_redirected(flow: http.HTTPFlow) -> bool:
    return _REWRITE_KEY in flow.metadata


def restore_original(flow: http.HTTPFlow) -> None:
    original: _Original | None = flow.metadata.pop(_REWRITE_KEY, None)
    if original is None:
        return
    request = flow.request
    host_header = request.host_header
    request.scheme, request.host, request.port, request.path = original.scheme, original.host, original.port, original.path
    request.host_header = host_header
    if original.headers is not None:
        request.headers = original.headers
        request.raw_content = original.content
