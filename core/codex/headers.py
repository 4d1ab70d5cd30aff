"""The header set the official Codex client (codex-rs) sends, which the backend expects.

Names and order are those of Codex CLI 0.171 over HTTP (recorded in core/upstream/codex_cli.json,
checked by tests/cli/test_codex_fingerprint.py): HTTP/2 keeps the order on the wire, so a header
out of place is as visible as a wrong one.
"""

from __future__ import annotations

import functools
import hashlib
import uuid

import orjson

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
ACCEPT_ENCODING = "zstd,gzip"
BODY_ENCODING = "zstd"  # the CLI compresses /responses bodies for ChatGPT accounts


def user_agent(cfg: Settings) -> str:
    client = cfg.client
    return f"{client.originator}/{client.app_version} ({client.platform}; {client.arch}) {client.terminal}"


@functools.lru_cache(maxsize=4096)
def account_installation_id(base: str, scope: str) -> str:
    """A stable UUIDv4-shaped id per (installation, account), so accounts do not share one id."""
    digest = bytearray(hashlib.sha256(f"{base}\0{scope}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def _identity(cfg: Settings, access_token: str, chatgpt_account_id: str | None) -> dict[str, str]:
    """The tail every call ends with: credentials, then who is calling."""
    headers = {"authorization": f"Bearer {access_token}"}
    if chatgpt_account_id:
        headers["chatgpt-account-id"] = chatgpt_account_id
    if cfg.client.residency:
        headers["x-openai-internal-codex-residency"] = cfg.client.residency
    headers["originator"] = cfg.client.originator
    headers["user-agent"] = user_agent(cfg)
    return headers


def base_headers(cfg: Settings, access_token: str, chatgpt_account_id: str | None) -> dict[str, str]:
    """A plain backend call (model list, usage): ``version`` first, as the CLI sends it."""
    return {"version": cfg.client.app_version, **_identity(cfg, access_token, chatgpt_account_id),
            "accept": "*/*", "accept-encoding": ACCEPT_ENCODING}


def turn_metadata(conversation_id: str, installation_id: str, model: str | None) -> str:
    """What the CLI puts in ``x-codex-turn-metadata`` when the client sent none of its own."""
    window = conversation_id + ":0"
    metadata = {"installation_id": installation_id, "session_id": conversation_id, "thread_id": conversation_id,
                "turn_id": str(uuid.uuid4()), "window_id": window, "window_number": 0, "request_kind": "turn"}
    if model:
        metadata["model"] = model
    return orjson.dumps(metadata).decode()


def responses_headers(
    cfg: Settings,
    access_token: str,
    chatgpt_account_id: str | None,
    *,
    conversation_id: str,
    installation_id: str,
    forwarded: dict[str, str],
    model: str | None = None,
) -> dict[str, str]:
    """``POST /codex/responses`` with a zstd body (see ``BODY_ENCODING``)."""
    # ``version`` is ours even when a client sent its own: it must agree with the user-agent.
    headers = {"version": cfg.client.app_version}
    if beta := forwarded.get("x-codex-beta-features"):
        headers["x-codex-beta-features"] = beta
    headers["x-codex-window-id"] = conversation_id + ":0"
    headers["x-codex-turn-metadata"] = forwarded.get("x-codex-turn-metadata") or turn_metadata(
        conversation_id, installation_id, model)
    if model:
        headers["x-codex-routing-hint"] = f"model={model}"
    headers.update({name: value for name, value in forwarded.items() if name not in headers and name != "version"})
    headers.update({
        "x-client-request-id": conversation_id,
        "session-id": conversation_id,
        "thread-id": conversation_id,
        "accept": "text/event-stream",
        "content-encoding": BODY_ENCODING,
        "content-type": "application/json",
    })
    headers.update(_identity(cfg, access_token, chatgpt_account_id))
    headers["accept-encoding"] = ACCEPT_ENCODING
    return headers
