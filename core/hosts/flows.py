"""Reading a mitmproxy flow as the gateway's ``ClientRequest``, and telling which flows are ours."""

from __future__ import annotations

from urllib.parse import parse_qsl

from mitmproxy import http

from core.protocols.base import ClientRequest

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
TOO_LARGE = "codex.too_large"  # flow metadata: the request body is over server.max_body_size (its size)


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


def header_dict(headers: http.Headers) -> dict[str, str]:
    """Lower-cased names; repeated headers joined as HTTP joins them (cookies with ``; ``)."""
    found: dict[str, str] = {}
    for raw_name, raw_value in headers.fields:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("utf-8", "surrogateescape")
        if name in found:
            value = f"{found[name]}{'; ' if name == 'cookie' else ', '}{value}"
        found[name] = value
    return found


def query_dict(path: str) -> dict[str, str]:
    _, _, query = path.partition("?")
    return dict(parse_qsl(query, keep_blank_values=True)) if query else {}


def client_request(flow: http.HTTPFlow, path: str | None = None, trusted: bool = False) -> ClientRequest:
    """The request as it stands now (after every addon's hooks); ``path`` overrides the route path
    (proxy mode strips a host's API prefix)."""
    request = flow.request
    try:
        body = request.get_content(strict=True) or b""
    except ValueError:  # undecodable content-encoding: hand over the raw bytes, the JSON parse will say why
        body = request.raw_content or b""
    full_path = request.path
    return ClientRequest(
        method=request.method,
        path=path if path is not None else full_path.partition("?")[0],
        query=query_dict(full_path),
        headers=header_dict(request.headers),
        body=body,
        client_addr=client_address(flow),
        trusted=trusted,
    )
