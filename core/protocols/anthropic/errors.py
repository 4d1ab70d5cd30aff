"""Anthropic's error envelope (``{type:"error",error:{type,message}}``) and the wording of refusals."""

from __future__ import annotations

from typing import Any

from core.protocols.base import BadRequest, ClientError, Failure, Reply, http_status, json_reply, retry_headers


def invalid(message: str, param: str | None = None) -> BadRequest:
    return BadRequest(f"Invalid request: {message}", code="invalid_request", param=param)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_payload(error: Failure) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) in Anthropic's envelope. No usable account and an overloaded backend are
    529 ``overloaded_error``, which Claude Code retries with backoff."""
    status = http_status(error)
    if status == 503:
        status = 529
    kind = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    message = error.message if isinstance(error, ClientError) else str(error)
    return status, {"type": "error", "error": {"type": kind, "message": message}}


def render_error(error: Failure) -> Reply:
    status, payload = error_payload(error)
    return json_reply(status, payload, retry_headers(error))
