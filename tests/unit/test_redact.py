"""Taking credentials off flows (core/redact.py) and handing them to the control plane (Unsealer)."""

from __future__ import annotations

import io
from typing import Any

import orjson
from mitmproxy.test import tflow

from core.control_plane import SEALED_HEADER, Unsealer
from core.hosts.flows import client_request
from core.gateway.redaction import REDACTED, redact_json, redacted_headers
from core.hosts.credentials import CredentialKeeper, Credentials


def test_redact_json_replaces_credential_members_at_any_depth() -> None:
    body = orjson.dumps({"label": "main", "token": "eyJ.secret", "accounts": [{"refreshToken": "rt_1", "note": "token ok"}],
                         "nested": {"api_key": "k", "password": "p", "count": 3, "access_token": ""}})
    redacted = orjson.loads(redact_json(body) or b"")
    assert redacted == {"label": "main", "token": REDACTED, "accounts": [{"refreshToken": REDACTED, "note": "token ok"}],
                        "nested": {"api_key": REDACTED, "password": REDACTED, "count": 3, "access_token": ""}}


def test_redact_json_leaves_other_bodies_alone() -> None:
    assert redact_json(b'{"model": "gpt-5.4", "messages": []}') is None
    assert redact_json(b"not json token=abc") is None
    assert redact_json(b"") is None


def test_redacted_headers() -> None:
    headers = [("Authorization", "Bearer sk-1"), ("x-api-key", "k"), ("Cookie", "a=b"), ("Content-Type", "application/json")]
    assert redacted_headers(headers) == [("Authorization", REDACTED), ("x-api-key", REDACTED), ("Cookie", REDACTED),
                                         ("Content-Type", "application/json")]


def test_keeper_takes_credentials_off_the_flow_and_gives_them_back_once() -> None:
    flow = tflow.tflow()
    flow.request.headers["Authorization"] = "Bearer cp-secret"
    flow.request.headers.add("Cookie", "a=1")
    flow.request.headers.add("Cookie", "b=2")
    flow.request.path = "/v1beta/models/x:generateContent?key=AIza-secret&alt=sse"
    keeper = CredentialKeeper()
    keeper.take(flow)
    assert flow.request.headers["authorization"] == REDACTED
    assert flow.request.headers.get_all("cookie") == [REDACTED, REDACTED]
    assert flow.request.query["key"] == REDACTED and flow.request.query["alt"] == "sse"
    assert "secret" not in repr(flow.get_state())  # nothing hidden on the flow either

    credentials = keeper.pop(flow)
    request = credentials.applied_to(client_request(flow))
    assert request.headers["authorization"] == "Bearer cp-secret"
    assert request.headers.get_all("cookie") == ["a=1", "b=2"]
    assert request.query["key"] == "AIza-secret" and request.query["alt"] == "sse"
    assert keeper.pop(flow) == Credentials()


def test_keeper_keeps_a_token_bearing_body_aside() -> None:
    flow = tflow.tflow()
    body = orjson.dumps({"token": "eyJ.secret", "label": "x"})
    flow.request.content = body
    keeper = CredentialKeeper()
    keeper.take_body(flow)
    assert orjson.loads(flow.request.content or b"") == {"token": REDACTED, "label": "x"}
    assert flow.request.headers["content-length"] == str(len(flow.request.raw_content or b""))
    assert keeper.pop(flow).body == body


def call(app: Unsealer, environ: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def inner(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(env, body=env["wsgi.input"].read(int(env.get("CONTENT_LENGTH") or 0)))
        return [b""]

    app._app = inner
    app(environ, lambda *a: None)
    return seen


def test_unsealer_restores_credentials_and_body_for_one_request() -> None:
    unsealer = Unsealer(None)
    token = unsealer.seal(Credentials(headers=[("authorization", "Bearer cp-secret"), ("cookie", "a=1"), ("cookie", "b=2")],
                                      body=b'{"token":"eyJ.secret"}'))
    redacted = b'{"token":"[redacted]"}'
    sent = io.BytesIO(redacted + b"NEXT REQUEST")
    environ = {"HTTP_" + SEALED_HEADER.upper().replace("-", "_"): token, "HTTP_AUTHORIZATION": REDACTED,
               "wsgi.input": sent, "CONTENT_LENGTH": str(len(redacted))}
    seen = call(unsealer, dict(environ))
    assert seen["HTTP_AUTHORIZATION"] == "Bearer cp-secret" and seen["HTTP_COOKIE"] == "a=1; b=2"
    assert seen["body"] == b'{"token":"eyJ.secret"}'
    assert sent.read() == b"NEXT REQUEST"  # the redacted copy was consumed, nothing more
    replayed = call(unsealer, {**environ, "wsgi.input": io.BytesIO(redacted)})
    assert replayed["HTTP_AUTHORIZATION"] == REDACTED  # a seal works once
