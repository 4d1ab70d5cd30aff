"""Taking credentials off flows (core/hosts/credentials.py) and handing them back to the request only."""

from __future__ import annotations

import orjson
from mitmproxy.test import tflow

from core.gateway.control import ControlPlane
from core.gateway.redaction import REDACTED, redact_json, redacted_headers
from core.hosts.credentials import CredentialKeeper, Credentials
from core.hosts.flows import client_request


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
    assert request.headers["cookie"] == "a=1; b=2"
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


def test_a_header_another_addon_set_wins_over_the_kept_one() -> None:
    flow = tflow.tflow()
    flow.request.headers["Authorization"] = "Bearer client-key"
    keeper = CredentialKeeper()
    keeper.take(flow)
    flow.request.headers["Authorization"] = "Bearer set-by-modify-headers"  # e.g. --set modify_headers=...
    assert keeper.pop(flow).applied_to(client_request(flow)).headers["authorization"] == "Bearer set-by-modify-headers"


def test_the_kept_body_goes_to_the_request_not_the_flow() -> None:
    flow = tflow.tflow()
    body = orjson.dumps({"token": "eyJ.secret"})
    flow.request.content = body
    keeper = CredentialKeeper()
    keeper.take_body(flow)
    assert keeper.pop(flow).applied_to(client_request(flow)).body == body


def test_the_control_plane_sees_the_real_request_and_client_address() -> None:
    flow = tflow.tflow()
    flow.request.path = "/auth/accounts?quota=true"
    flow.request.headers["Authorization"] = "Bearer cp-secret"
    flow.request.headers.add("Cookie", "a=1")
    flow.request.headers.add("Cookie", "b=2")
    flow.request.content = b'{"token":"eyJ.secret"}'
    keeper = CredentialKeeper()
    keeper.take(flow)
    keeper.take_body(flow)
    request = keeper.pop(flow).applied_to(client_request(flow))
    environ = ControlPlane(None).environ(request, "http", "127.0.0.1:8080")
    assert environ["HTTP_AUTHORIZATION"] == "Bearer cp-secret" and environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["wsgi.input"].read() == b'{"token":"eyJ.secret"}'
    assert environ["REMOTE_ADDR"] == request.client_addr and environ["QUERY_STRING"] == "quota=true"
    assert environ["PATH_INFO"] == "/auth/accounts" and environ["HTTP_HOST"] == "127.0.0.1:8080"
