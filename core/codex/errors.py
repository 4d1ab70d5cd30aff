"""Upstream failures, classified once so every protocol and the account pool agree on them."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import orjson

# How the pool should treat the account that produced the error (classify_http decides).
RETRY_SAME = "retry_same"  # transient: try again on the same account after a short pause
ROTATE = "rotate"  # this account cannot serve now: try another one
FATAL = "fatal"  # the request itself is wrong: no account will do better

USAGE_LIMIT_REACHED = "usage_limit_reached"  # the backend's 429 for a used-up plan window
_TRY_AGAIN = re.compile(r"try again in\s*([\d.]+)\s*(ms|s|seconds?)", re.IGNORECASE)
MAX_ERROR_BODY = 1024 * 1024


@dataclass(slots=True)
class UpstreamError(Exception):
    status: int
    code: str
    message: str
    retry_after: float | None = None  # seconds until the account (or pool) can serve again
    account_effect: str | None = None  # rate_limited | expired | banned | cooldown | quota_exhausted
    action: str = FATAL
    plan_type: str | None = None  # usage_limit_reached: the plan whose limit it is (Codex CLI shows it)

    def __str__(self) -> str:
        return f"Codex API error ({self.status}): {self.message}"


def _detail(body: Any, raw: bytes) -> tuple[str, str]:
    """(code, message) from the backend's FastAPI ``{"detail"}`` or OpenAI ``{"error"}`` shapes."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = err.get("code") or err.get("type") or ""
            return str(code), str(err.get("message") or err.get("detail") or code or raw[:500].decode("utf-8", "replace"))
        if isinstance(err, str):
            return err, str(body.get("error_description") or body.get("message") or err)
        if "detail" in body:
            detail = body["detail"]
            return "", detail if isinstance(detail, str) else orjson.dumps(detail).decode()
    return "", raw[:2000].decode("utf-8", "replace").strip()


def _try_again_in(message: str) -> float | None:
    """"… try again in 2.5s" / "in 300ms" in a transient rate-limit message."""
    if match := _TRY_AGAIN.search(message):
        value = float(match.group(1))
        return value / 1000 if match.group(2).lower() == "ms" else value
    return None


def _resets_in(body: Any, headers: dict[str, str], now: float, message: str) -> float | None:
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        if isinstance(err.get("resets_in_seconds"), (int, float)):
            return float(err["resets_in_seconds"])
        if isinstance(err.get("resets_at"), (int, float)):
            return max(0.0, float(err["resets_at"]) - now)
    retry_after = headers.get("retry-after")
    if retry_after:
        try:
            return float(retry_after)
        except ValueError:
            pass
    return _try_again_in(message)


def is_unsupported_model(message: str) -> bool:
    """Whether an error message refuses the model: it mentions a model and says "not supported" or
    "not available". Such an error moves the turn to another account, and the pipeline remembers
    that the serving account's plan lacks the model."""
    lowered = message.lower()
    return "model" in lowered and any(s in lowered for s in ("not supported", "not_supported", "not available", "not_available"))


def classify_http(status: int, headers: dict[str, str], raw: bytes, now: float | None = None) -> UpstreamError:
    """Turn a non-2xx upstream answer into an UpstreamError with the pool's reaction."""
    now = time.time() if now is None else now
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    code, message = _detail(body, raw)
    lowered = message.lower()
    if status == 429:
        err = body.get("error") if isinstance(body, dict) else None
        plan = err.get("plan_type") if isinstance(err, dict) and isinstance(err.get("plan_type"), str) else None
        return UpstreamError(429, code or "rate_limit_exceeded", message or "Rate limited", _resets_in(body, headers, now, message),
                             "rate_limited", ROTATE, plan)
    if status == 401:
        effect = "banned" if "deactivated" in lowered else "expired"
        return UpstreamError(401, code or "unauthorized", message or "Unauthorized", None, effect, ROTATE)
    if status == 402:
        return UpstreamError(402, code or "payment_required", message or "Payment required", None, "quota_exhausted", ROTATE)
    if status == 403:
        is_cloudflare = headers.get("cf-mitigated") == "challenge" or body is None and b"<html" in raw[:2000].lower()
        if is_cloudflare:
            return UpstreamError(502, "cloudflare_challenge", "Upstream blocked the request (Cloudflare challenge)", None, "cooldown", ROTATE)
        return UpstreamError(403, code or "forbidden", message or "Forbidden", None, "banned", ROTATE)
    if status == 404 and not raw.strip():
        return UpstreamError(502, "upstream_blocked", "Upstream answered an empty 404 (blocked path)", None, "cooldown", ROTATE)
    if is_unsupported_model(message):
        return UpstreamError(status if 400 <= status < 500 else 400, code or "model_not_supported", message, None, None, ROTATE)
    if status == 503 or code == "server_is_overloaded":
        return UpstreamError(503, code or "server_is_overloaded", message or "Upstream overloaded", None, None, ROTATE)
    if status >= 500:
        return UpstreamError(status, code or "server_error", message or "Upstream server error", None, None, RETRY_SAME)
    return UpstreamError(status if 400 <= status < 600 else 502, code or "codex_api_error", message or f"HTTP {status}", None, None, FATAL)


_EVENT_STATUS = (
    ("server_is_overloaded", 503),
    ("server_error", 500),
    ("invalid_request", 400),
    ("not_found", 400),
    ("context_length", 400),
    ("rate_limit", 429),
    ("usage_limit", 429),
    ("unauthorized", 401),
    ("invalid_api_key", 401),
    ("token", 401),
    ("forbidden", 403),
    ("banned", 403),
    ("payment", 402),
    ("quota", 402),
)


def classify_event(data: dict[str, Any], now: float | None = None) -> UpstreamError:
    """An in-stream ``error`` / ``response.failed`` event as an UpstreamError."""
    now = time.time() if now is None else now
    response = data.get("response") if isinstance(data.get("response"), dict) else {}
    err = data.get("error") if isinstance(data.get("error"), dict) else response.get("error")
    if not isinstance(err, dict):
        err = data
    code = str(err.get("code") or err.get("type") or response.get("code") or "unknown")
    if code in ("error", "response.failed"):
        code = "unknown"
    message = str(err.get("message") or err.get("detail") or data.get("message") or code)
    lowered = code.lower()
    status = next((s for key, s in _EVENT_STATUS if key in lowered), 502)
    if isinstance(data.get("status"), int):
        status = data["status"]
    retry_after = None
    if status == 429:
        if isinstance(err.get("resets_in_seconds"), (int, float)):
            retry_after = float(err["resets_in_seconds"])
        elif isinstance(err.get("resets_at"), (int, float)):
            retry_after = max(0.0, float(err["resets_at"]) - now)
        else:
            retry_after = _try_again_in(message)
    action, effect = FATAL, None
    if status == 429:
        action, effect = ROTATE, ("rate_limited" if "usage_limit" in lowered else None)
    elif status in (401, 402, 403):
        action, effect = ROTATE, {401: "expired", 402: "quota_exhausted", 403: "banned"}[status]
    elif status in (500, 503):
        action = ROTATE
    return UpstreamError(status, code, message, retry_after, effect, action)
