"""The Responses wire (OpenAI's Responses API, or another Responses server such as a second
codex-proxy): the turn is already in this shape, so it is sent nearly as is and its events come
back unchanged."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.sse import SSEParser
from core.providers.wires import CallSpec, WireRequest
from core.turn.model import UpstreamEvent, decode_event

# The public Responses API's request fields this wire sends (the Codex-only client_metadata is not one).
FIELDS = ("instructions", "input", "tools", "tool_choice", "parallel_tool_calls", "reasoning", "include", "text",
          "service_tier", "prompt_cache_key")  # fmt: skip
_HOSTED_ONLY = frozenset({"image_generation", "local_shell"})  # tools only the ChatGPT backend runs


def build_request(spec: CallSpec) -> WireRequest:
    body: dict[str, Any] = {"model": spec.model, "stream": True, "store": False}
    for name in FIELDS:
        if spec.body.get(name) is not None:
            body[name] = spec.body[name]
    if isinstance(body.get("tools"), list):
        body["tools"] = [t for t in body["tools"] if not (isinstance(t, dict) and t.get("type") in _HOSTED_ONLY)]
    if "reasoning" in spec.omit:
        body.pop("reasoning", None)
        body["include"] = [i for i in body.get("include") or [] if i != "reasoning.encrypted_content"] or None
    if body.get("service_tier") == "priority" and spec.provider.kind != "openai":
        body.pop("service_tier")
    if (limit := spec.sampling("max_output_tokens")) is not None:
        body["max_output_tokens"] = limit
    for name in ("temperature", "top_p"):
        if (value := spec.sampling(name)) is not None:
            body[name] = value
    body = {k: v for k, v in body.items() if v is not None}
    headers = spec.headers({"Authorization": f"Bearer {spec.key}"})
    return WireRequest(spec.url("/responses"), headers, orjson.dumps(body))


class StreamParser:
    def __init__(self, spec: CallSpec) -> None:
        self._sse = SSEParser()

    def feed(self, chunk: bytes) -> list[UpstreamEvent]:
        return [e for frame in self._sse.feed(chunk) if (e := decode_event(frame.event, frame.data)) is not None]

    def close(self) -> list[UpstreamEvent]:
        return [e for frame in self._sse.close() if (e := decode_event(frame.event, frame.data)) is not None]

