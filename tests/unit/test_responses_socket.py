"""Unit tests of the Responses WebSocket pieces that need no proxy: the handshake key, and how a
connection continues a response (``previous_response_id``) from what it kept."""

from __future__ import annotations

from typing import Any

import pytest

from core.gateway.responses_ws import KEPT_RESPONSES, ResponsesSocket
from core.hosts.websocket import accept_key
from core.protocols.base import BadRequest


def test_accept_key_is_rfc_6455s() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3's example


def socket() -> Any:
    return ResponsesSocket(services=None, socket=None, prepare=None, run=None)  # type: ignore[arg-type]


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_a_continuation_carries_the_whole_conversation() -> None:
    conn = socket()
    first = conn._expand({"type": "response.create", "model": "m", "input": "hi"})
    assert first == {"model": "m", "input": [user("hi")]}
    answer = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}
    conn._keep("resp_1", first["input"] + [answer])
    second = conn._expand({"type": "response.create", "previous_response_id": "resp_1", "input": [user("again")]})
    assert second["input"] == [user("hi"), answer, user("again")] and "previous_response_id" not in second


def test_unknown_or_forgotten_responses_are_not_found() -> None:
    conn = socket()
    for index in range(KEPT_RESPONSES + 1):
        conn._keep(f"resp_{index}", [user(str(index))])
    with pytest.raises(BadRequest) as missing:
        conn._expand({"previous_response_id": "resp_0", "input": []})  # the oldest was let go
    assert missing.value.code == "previous_response_not_found" and missing.value.param == "previous_response_id"
    assert conn._expand({"previous_response_id": f"resp_{KEPT_RESPONSES}"})["input"] == [user(str(KEPT_RESPONSES))]
    with pytest.raises(BadRequest):
        conn._expand({"input": 42})
