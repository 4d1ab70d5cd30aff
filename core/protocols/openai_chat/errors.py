"""OpenAI's error envelope (``{error:{message,type,param,code}}``)."""

from __future__ import annotations

import time
from typing import Any

from core.codex.errors import USAGE_LIMIT_REACHED
from core.protocols.base import ClientError, Failure, Reply, http_status, json_reply, retry_headers


_CLIENT_ERROR_TYPES = {"rate_limit": "rate_limit_error", "permission": "permission_error"}


def error_payload(error: Failure) -> dict[str, Any]:
    if isinstance(error, ClientError):
        kind = _CLIENT_ERROR_TYPES.get(error.kind, "invalid_request_error")
        code = error.code or {"authentication": "invalid_api_key"}.get(error.kind)
        return {"error": {"message": error.message, "type": kind, "param": error.param, "code": code}}
    status = error.status
    if status == 429 and error.code == USAGE_LIMIT_REACHED:
        return {"error": usage_limit_error(error.message, error.retry_after, error.plan_type)}
    if status == 429:
        kind = "rate_limit_error"
    elif status in (401, 403):
        kind = "authentication_error" if status == 401 else "permission_error"
    elif status < 500:
        kind = "invalid_request_error"
    else:
        kind = "server_error"
    return {"error": {"message": error.message, "type": kind, "param": None, "code": error.code}}


def usage_limit_error(message: str, retry_after: float | None, plan_type: str | None) -> dict[str, Any]:
    """The backend's usage-limit error object, which Codex CLI parses (``type``, ``plan_type``,
    ``resets_at``; older builds ``resets_in_seconds``); ``code`` for clients that read that."""
    error: dict[str, Any] = {"message": message, "type": USAGE_LIMIT_REACHED, "param": None, "code": USAGE_LIMIT_REACHED}
    if plan_type:
        error["plan_type"] = plan_type
    if retry_after is not None:
        error["resets_in_seconds"] = max(1, round(retry_after))
        error["resets_at"] = int(time.time()) + error["resets_in_seconds"]
    return error


def render_error(error: Failure) -> Reply:
    return json_reply(http_status(error), error_payload(error), retry_headers(error))
