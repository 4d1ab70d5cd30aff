"""Keeping credentials out of everything mitmproxy shows or saves.

mitmweb, ``-w`` flow files and our upstream-leg recordings all read the flow object, so a secret
must never sit on it. The gateway takes the credentials off each flow it answers in
``requestheaders`` — before mitmweb's View addon first sees the flow (script addons precede it
in mitmproxy's addon chain) — and keeps them beside the flow, where only the request hook reads
them back. What is left on the flow says ``[redacted]``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace

from mitmproxy import http

from core.gateway.redaction import REDACTED, SECRET_HEADERS, SECRET_QUERY_PARAMS, redact_json
from core.protocols.base import ClientRequest


@dataclass(slots=True)
class Credentials:
    """What was taken off one flow: header and query values (and perhaps its body)."""

    headers: dict[str, str] = field(default_factory=dict)  # lower-cased name → value (repeats joined)
    query: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def applied_to(self, request: ClientRequest) -> ClientRequest:
        """The request with its credentials back, for authentication and translation only. A
        header another addon has set since (any value but the placeholder) wins over the kept one."""
        if not self.headers and not self.query and self.body is None:
            return request
        headers = dict(request.headers)
        for name, value in self.headers.items():
            if _placeholder(headers.get(name)):
                headers[name] = value
        query = dict(request.query)
        for name, value in self.query.items():
            if _placeholder(query.get(name)):
                query[name] = value
        return replace(request, headers=headers, query=query, body=request.body if self.body is None else self.body)


def _placeholder(value: str | None) -> bool:
    """What ``take`` left (one placeholder per value, joined like any repeated header), or nothing."""
    return value is None or value.replace(REDACTED, "").strip(",; ") == ""


_SECRET_HEADER_BYTES = frozenset(name.encode() for name in SECRET_HEADERS)
_SECRET_QUERY_MARKERS = tuple(f"{name}=" for name in SECRET_QUERY_PARAMS)


class CredentialKeeper:
    """Takes credentials off flows and hands them back once; nothing is stored on the flow itself."""

    def __init__(self) -> None:
        self._kept: weakref.WeakKeyDictionary[http.HTTPFlow, Credentials] = weakref.WeakKeyDictionary()

    def take(self, flow: http.HTTPFlow) -> None:
        """Strip credential headers and query parameters (``requestheaders``: no body yet)."""
        request = flow.request
        secret = {name.lower() for name, _ in request.headers.fields if name.lower() in _SECRET_HEADER_BYTES}
        path = request.path
        query_secret = "?" in path and any(marker in path.lower() for marker in _SECRET_QUERY_MARKERS)
        if not secret and not query_secret:
            return
        taken = Credentials()
        for raw in secret:
            name = raw.decode()
            values = request.headers.get_all(name)
            taken.headers[name] = ("; " if name == "cookie" else ", ").join(values)
            request.headers.set_all(name, [REDACTED] * len(values))
        if query_secret:
            query = request.query
            for name in [name for name in query if name.lower() in SECRET_QUERY_PARAMS]:
                values = query.get_all(name)
                taken.query[name] = values[-1]
                query.set_all(name, [REDACTED] * len(values))
        self._kept[flow] = taken

    def take_body(self, flow: http.HTTPFlow) -> None:
        """Keep the body aside and leave a copy without credential members on the flow."""
        body = flow.request.get_content(strict=False) or b""
        redacted = redact_json(body)
        if redacted is not None:
            self._kept.setdefault(flow, Credentials()).body = body
            flow.request.content = redacted  # re-encoded as the client encoded it; content-length follows

    def pop(self, flow: http.HTTPFlow) -> Credentials:
        return self._kept.pop(flow, None) or _NONE


_NONE = Credentials()


class ResponseSecrets:
    """Keeps the credentials an answer carries off its flow. A dashboard login's ``Set-Cookie``
    must reach the browser, so it stays beside the flow and goes into the bytes only as mitmproxy
    writes the answer's head (HTTP/1: the dashboard is served on our own port, never over TLS);
    credential members of a JSON body (a full account export) are redacted once the client has
    the body (``response``: the body was streamed, so it was not on the flow before)."""

    _SECRET = ("set-cookie",)

    def __init__(self) -> None:
        self._kept: weakref.WeakKeyDictionary[http.Response, list[tuple[bytes, bytes]]] = weakref.WeakKeyDictionary()

    def install(self) -> None:
        from mitmproxy.net.http import http1

        original = getattr(http1.assemble_response_head, "__wrapped__", http1.assemble_response_head)
        kept = self._kept

        def assemble_response_head(response: http.Response) -> bytes:
            real = kept.pop(response, None)
            if real is None:
                return original(response)
            shown = response.headers
            response.headers = http.Headers([field for field in shown.fields if field[0].lower() not in (b"set-cookie",)] + real)
            try:
                return original(response)
            finally:
                response.headers = shown

        assemble_response_head.__wrapped__ = original  # type: ignore[attr-defined]
        http1.assemble_response_head = assemble_response_head

    def take(self, response: http.Response) -> None:
        real = [field for field in response.headers.fields if field[0].lower() == b"set-cookie"]
        if real:
            self._kept[response] = real
            response.headers.set_all("set-cookie", [REDACTED] * len(real))

    @staticmethod
    def redact_body(response: http.Response) -> None:
        if response.raw_content and (redacted := redact_json(response.get_content(strict=False) or b"")) is not None:
            response.content = redacted
