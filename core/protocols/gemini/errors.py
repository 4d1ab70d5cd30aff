"""Gemini's error envelope (``{error:{code,message,status}}``, with ``RetryInfo`` when the failure says when to retry)."""

from __future__ import annotations

from typing import Any

from core.protocols.base import Failure, Reply, http_status, json_reply, retry_headers

# google.rpc status names by HTTP status (what Google's own errors carry).
RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_payload(error: Failure) -> dict[str, Any]:
    status = http_status(error)
    rpc = RPC_STATUS.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    body: dict[str, Any] = {"code": status, "message": error.message, "status": rpc}
    retry_after = getattr(error, "retry_after", None)
    if retry_after:  # Gemini CLI waits for RetryInfo before retrying a 429
        body["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{max(1, round(retry_after))}s"}]
    return {"error": body}


def render_error(error: Failure) -> Reply:
    payload = error_payload(error)
    return json_reply(payload["error"]["code"], payload, retry_headers(error))
