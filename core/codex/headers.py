"""The header set the official Codex client (codex-rs) sends, which the backend expects."""

from __future__ import annotations

import functools
import hashlib
import uuid

from collections.abc import Mapping

from core.settings import Settings

# Client headers that carry per-turn routing hints; forwarded upstream as they came.
FORWARDED_CLIENT_HEADERS = (
    "x-codex-turn-state",
    "x-codex-turn-metadata",
    "x-codex-beta-features",
    "x-responsesapi-include-timing-metrics",
    "x-codex-parent-thread-id",
    "x-openai-subagent",
    "version",
)


def relayed_headers(upstream: Mapping[str, str], protocol: str) -> dict[str, str]:
    """What a client is shown of the serving account's answer: its ``x-codex-*`` rate-limit
    headers (Codex CLI displays them; over a WebSocket they come from the upgrade and the turn's
    ``codex.rate_limits`` event), and the sticky-routing turn state to Responses clients only."""
    relayed = {name: value for name, value in upstream.items() if name.startswith("x-codex-") and name != "x-codex-turn-state"}
    if protocol == "responses" and (state := upstream.get("x-codex-turn-state")):
        relayed["x-codex-turn-state"] = state
    return relayed


def user_agent(cfg: Settings) -> str:
    client = cfg.client
    return f"{client.originator}/{client.app_version} ({client.platform} {client.arch})"


@functools.lru_cache(maxsize=4096)
def account_installation_id(base: str, scope: str) -> str:
    """A stable UUIDv4-shaped id per (installation, account), so accounts do not share one id."""
    digest = bytearray(hashlib.sha256(f"{base}\0{scope}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def base_headers(cfg: Settings, access_token: str, chatgpt_account_id: str | None) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {access_token}",
        "originator": cfg.client.originator,
        "User-Agent": user_agent(cfg),
        "Accept-Language": "en-US,en;q=0.9",
    }
    if chatgpt_account_id:
        headers["ChatGPT-Account-Id"] = chatgpt_account_id
    return headers


def responses_headers(
    cfg: Settings,
    access_token: str,
    chatgpt_account_id: str | None,
    *,
    conversation_id: str,
    installation_id: str,
    forwarded: dict[str, str],
) -> dict[str, str]:
    headers = base_headers(cfg, access_token, chatgpt_account_id)
    headers.update(
        {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "OpenAI-Beta": "responses_websockets=2026-02-06",
            "x-client-request-id": conversation_id,
            "session_id": conversation_id,
            "x-codex-window-id": conversation_id + ":0",
            "x-codex-installation-id": installation_id,
        }
    )
    if cfg.client.residency:
        headers["x-openai-internal-codex-residency"] = cfg.client.residency
    headers.update(forwarded)
    return headers
