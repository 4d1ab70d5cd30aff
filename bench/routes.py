"""The requests the benchmark sends: the fake's own Codex call (direct) and each protocol route of
the proxy, all asking for the same turn."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

PROMPT = "Benchmark prompt."


@dataclass(frozen=True, slots=True)
class Route:
    """One way to ask the proxy for a turn: the same model request in a protocol's own shape."""

    name: str
    stream_path: str
    collect_path: str
    stream_body: dict[str, Any]
    collect_body: dict[str, Any]
    transport: str = "sse"  # how the proxy reaches the fake for it (upstream.transport)

    def headers(self, key: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        if self.name == "anthropic":
            headers["x-api-key"] = key
        return headers


def _chat(model: str, stream: bool, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, **extra, "messages": [{"role": "user", "content": PROMPT}]}
    return {**body, "stream": True} if stream else body


GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
ROUTES = {
    "openai": Route("openai", "/v1/chat/completions", "/v1/chat/completions", _chat("gpt-5.4", True), _chat("gpt-5.4", False)),
    "responses": Route("responses", "/v1/responses", "/v1/responses",
                       {"model": "gpt-5.4", "stream": True, "input": PROMPT}, {"model": "gpt-5.4", "input": PROMPT}),
    "anthropic": Route("anthropic", "/v1/messages", "/v1/messages",
                       _chat("claude-sonnet-4-5", True, max_tokens=1024), _chat("claude-sonnet-4-5", False, max_tokens=1024)),
    "gemini": Route("gemini", "/v1beta/models/gpt-5.4:streamGenerateContent?alt=sse", "/v1beta/models/gpt-5.4:generateContent",
                    GEMINI_BODY, GEMINI_BODY),
}



def over_websocket(route: Route) -> Route:
    """The same route served by a proxy that sends its turns over the backend's WebSocket."""
    return dataclasses.replace(route, name=route.name + "/ws", transport="websocket")


# Calling the fake directly: what the proxy itself sends upstream for such a turn.
CODEX_PATH = "/backend-api/codex/responses"
CODEX_BODY = {"model": "gpt-5.4", "instructions": "", "stream": True, "store": False,
              "input": [{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}]}
