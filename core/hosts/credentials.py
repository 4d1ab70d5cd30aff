"""Keeping credentials out of everything mitmproxy shows or saves.

mitmweb, ``-w`` flow files and our upstream-leg recordings all read the flow object, so a secret
must never sit on it. The gateway takes the credentials off each flow it answers in
``requestheaders`` — before mitmweb's View addon first sees the flow (script addons precede it
in mitmproxy's addon chain) — and keeps them beside the flow, where only the request hook reads
them back. What is left on the flow says ``[redacted]``.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from mitmproxy import http

from core.gateway.redaction import REDACTED, SECRET_QUERY_PARAMS, is_secret_header, redact_json
from core.protocols.base import ClientRequest


@dataclass(slots=True)
class Credentials:
    """What was taken off one flow: header and query values (and perhaps its body)."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None

    def applied_to(self, request: ClientRequest) -> ClientRequest:
        """The request as the client sent it, for authentication and translation only."""
        if not self.headers and not self.query:
            return request
        taken = {name for name, _ in self.headers}
        kept = request.headers.items(multi=True) if isinstance(request.headers, http.Headers) else request.headers.items()
        fields = [(name, value) for name, value in kept if name.lower() not in taken] + self.headers
        headers = http.Headers([(name.encode(), value.encode()) for name, value in fields])
        query: Mapping[str, str] = {**dict(request.query), **dict(self.query)}
        return replace(request, headers=headers, query=query)


class CredentialKeeper:
    """Takes credentials off flows and hands them back once; nothing is stored on the flow itself."""

    def __init__(self) -> None:
        self._kept: weakref.WeakKeyDictionary[http.HTTPFlow, Credentials] = weakref.WeakKeyDictionary()

    def take(self, flow: http.HTTPFlow) -> None:
        """Strip credential headers and query parameters (``requestheaders``: no body yet)."""
        request = flow.request
        taken = Credentials()
        for name in {name.lower() for name in request.headers if is_secret_header(name)}:
            values = request.headers.get_all(name)
            taken.headers.extend((name, value) for value in values)
            request.headers.set_all(name, [REDACTED] * len(values))
        query = request.query
        for name in [name for name in query if name.lower() in SECRET_QUERY_PARAMS]:
            values = query.get_all(name)
            taken.query.extend((name, value) for value in values)
            query.set_all(name, [REDACTED] * len(values))
        if taken.headers or taken.query:
            self._kept[flow] = taken

    def take_body(self, flow: http.HTTPFlow) -> None:
        """Keep the body aside and leave a copy without credential members on the flow."""
        raw = flow.request.raw_content
        redacted = redact_json(flow.request.get_content(strict=False) or b"")
        if redacted is not None:
            self._kept.setdefault(flow, Credentials()).body = raw
            flow.request.content = redacted  # re-encoded as the client encoded it; content-length follows

    def pop(self, flow: http.HTTPFlow) -> Credentials:
        return self._kept.pop(flow, None) or Credentials()
