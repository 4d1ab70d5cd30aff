"""Ready-made scenarios: the backend's failure answers as it sends them, by name (``preset``), and
the check every scripted scenario passes through."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from codex_fake.scenarios import SCENARIO_KEYS


def answered_by_cloudflare(scenario: dict[str, Any]) -> bool:
    """A failure Cloudflare answers in front of the backend (a challenge page, a blocked path's
    empty 404): it meets HTTP requests — a WebSocket upgrade among them — never a socket's frames."""
    spec = scenario.get("http_error")
    if not isinstance(spec, dict):
        return False
    body, status = spec.get("body"), spec.get("status")
    headers = {str(k).lower(): v for k, v in (spec.get("headers") or {}).items()}
    return (status == 404 and not body) or (isinstance(body, str) and body.lstrip().startswith("<")) or "cf-mitigated" in headers


def check_scenario(scenario: Any) -> dict[str, Any]:
    """Resolve presets and reject unknown keys early, so a typo fails in the test, not silently."""
    if isinstance(scenario, str):
        return preset(scenario)
    if not isinstance(scenario, dict):
        raise ValueError(f"scenario must be a dict, got {type(scenario).__name__}")
    if "preset" in scenario:
        args = {k: v for k, v in scenario.items() if k != "preset"}
        return preset(scenario["preset"], **args)
    unknown = set(scenario) - SCENARIO_KEYS
    if unknown:
        raise ValueError(f"unknown scenario keys: {sorted(unknown)}")
    return scenario


# --- ready-made faults: the backend's failure answers, as it sends them -----------------------------


def _rate_headers(primary: float, secondary: float, resets_in: int, now: float) -> dict[str, str]:
    return {
        "x-codex-primary-used-percent": f"{primary:.1f}",
        "x-codex-primary-window-minutes": "300",
        "x-codex-primary-reset-at": str(int(now + resets_in)),
        "x-codex-secondary-used-percent": f"{secondary:.1f}",
        "x-codex-secondary-window-minutes": "10080",
        "x-codex-secondary-reset-at": str(int(now + 604800)),
        "x-codex-credits-has-credits": "false",
        "x-codex-credits-unlimited": "false",
        "x-codex-credits-balance": "0",
        "x-codex-active-limit": "codex",
    }


def usage_limit_429(resets_in: int = 3600, plan_type: str = "plus", secondary: bool = False) -> dict[str, Any]:
    """Plan quota exhausted: 429 ``usage_limit_reached`` with both reset fields and 100% headers."""
    now = time.time()
    headers = _rate_headers(30.0 if secondary else 100.0, 100.0 if secondary else 40.0, resets_in, now)
    if secondary:
        headers["x-codex-secondary-reset-at"] = str(int(now + resets_in))
    headers["x-codex-rate-limit-reached-type"] = "secondary" if secondary else "primary"
    body = {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": plan_type,
            "resets_at": int(now + resets_in),
            "resets_in_seconds": int(resets_in),
        }
    }
    return {"http_error": {"status": 429, "body": body, "headers": headers}}


def rate_limited_429(retry_in: float = 2.5) -> dict[str, Any]:
    """Transient rate limit (not a quota): ``rate_limit_exceeded`` with a try-again hint."""
    body = {
        "error": {
            "type": "rate_limit_error",
            "code": "rate_limit_exceeded",
            "message": f"Rate limit reached. Please try again in {retry_in}s.",
        }
    }
    return {"http_error": {"status": 429, "body": body, "headers": {}}}


def usage_not_included_429(plan_type: str = "free") -> dict[str, Any]:
    error = {"type": "usage_not_included", "message": "Your plan does not include Codex.", "plan_type": plan_type}
    body = {"error": error}
    return {"http_error": {"status": 429, "body": body, "headers": {}}}


def token_expired_401() -> dict[str, Any]:
    """The OpenAI-style expired-token 401, with the auth-error headers codex-rs reads."""
    body = {
        "error": {
            "message": "Provided authentication token is expired. Please try signing in again.",
            "type": "invalid_request_error",
            "code": "token_expired",
            "param": None,
        }
    }
    headers = {
        "x-openai-authorization-error": "token_expired",
        "x-error-json": "eyJlcnJvciI6eyJjb2RlIjoidG9rZW5fZXhwaXJlZCJ9fQ==",
    }
    return {"http_error": {"status": 401, "body": body, "headers": headers}}


def deactivated_401() -> dict[str, Any]:
    body = {
        "error": {
            "message": "Your OpenAI account has been deactivated, please check your email for more information.",
            "type": "invalid_request_error",
            "code": "account_deactivated",
            "param": None,
        }
    }
    return {"http_error": {"status": 401, "body": body, "headers": {}}}


def ban_403(message: str = "Your access to Codex has been suspended for violating our usage policies.") -> dict[str, Any]:
    """A JSON 403: the account is banned or flagged (rotate away, mark banned)."""
    return {"http_error": {"status": 403, "body": {"detail": message}, "headers": {}}}


CLOUDFLARE_HTML = (
    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>"
    "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\"></head>"
    "<body><div class=\"main-wrapper\" role=\"main\"><div class=\"main-content\">"
    "<h1>chatgpt.com</h1><p>Verifying you are human. This may take a few seconds.</p>"
    "</div></div></body></html>"
)


def cloudflare_403() -> dict[str, Any]:
    """A Cloudflare challenge page: HTML body and ``cf-mitigated: challenge`` — not a ban."""
    headers = {
        "content-type": "text/html; charset=UTF-8",
        "cf-mitigated": "challenge",
        "cf-ray": f"{secrets.token_hex(8)}-AMS",
        "server": "cloudflare",
    }
    return {"http_error": {"status": 403, "body": CLOUDFLARE_HTML, "headers": headers}}


def empty_404() -> dict[str, Any]:
    """Cloudflare's stealth path block: 404 with an empty body."""
    return {"http_error": {"status": 404, "body": "", "headers": {"server": "cloudflare"}}}


def payment_402() -> dict[str, Any]:
    return {"http_error": {"status": 402, "body": {"detail": "Payment required"}, "headers": {}}}


def overloaded_503() -> dict[str, Any]:
    message = "The server is overloaded. Please try again later."
    body = {"error": {"code": "server_is_overloaded", "message": message, "type": "server_error"}}
    return {"http_error": {"status": 503, "body": body, "headers": {}}}


def server_error_500() -> dict[str, Any]:
    body = {"error": {"code": "server_error", "message": "The server had an internal error", "type": "server_error"}}
    return {"http_error": {"status": 500, "body": body, "headers": {}}}


def context_length_failed(after: int = 0) -> dict[str, Any]:
    """In-stream ``response.failed`` with ``context_length_exceeded`` (after ``after`` output events)."""
    fail = {
        "code": "context_length_exceeded",
        "message": "Your input exceeds the context window of this model. Please adjust your input and try again.",
    }
    return {"fail": fail, "fail_after": after}


def failed(
    code: str = "server_error", message: str = "An error occurred while processing your request.", after: int = 0
) -> dict[str, Any]:
    return {"fail": {"code": code, "message": message}, "fail_after": after}


def error_event(
    code: str = "server_error", message: str = "An error occurred.", after: int | None = None
) -> dict[str, Any]:
    """A bare SSE ``error`` event (first, or after ``after`` output events)."""
    sc: dict[str, Any] = {"error_event": {"code": code, "message": message, "param": None}}
    if after is not None:
        sc["error_after"] = after
    return sc


def incomplete(reason: str = "max_output_tokens", text: str | None = "This answer was cut") -> dict[str, Any]:
    sc: dict[str, Any] = {"incomplete": reason}
    if text is not None:
        sc["text"] = text
    return sc


def premature_close(n: int = 3, mode: str = "close") -> dict[str, Any]:
    """Stop after ``n`` events with no terminal event (``mode='eof'`` ends the body cleanly)."""
    return {"disconnect_after": n, "disconnect_mode": mode}


def json_instead_of_sse(body: Any = None) -> dict[str, Any]:
    """A 200 whose body is JSON, not SSE (codex-proxy reports ``non_sse_response``)."""
    return {"json_body": body if body is not None else {"detail": "Unexpected JSON response"}}


def empty_completion() -> dict[str, Any]:
    return {"empty": True}


def refresh_error(status: int = 401, code: str = "refresh_token_expired", message: str | None = None) -> dict[str, Any]:
    """A fault for the account's refresh grants only (``fault(account, refresh_error())``)."""
    body = {"error": {"code": code, "message": message or f"Refresh failed: {code}"}}
    return {"refresh_error": {"status": status, "body": body}}


PRESETS: dict[str, Callable[..., dict[str, Any]]] = {
    f.__name__: f
    for f in (
        usage_limit_429, rate_limited_429, usage_not_included_429, token_expired_401, deactivated_401,
        ban_403, cloudflare_403, empty_404, payment_402, overloaded_503, server_error_500,
        context_length_failed, failed, error_event, incomplete, premature_close, json_instead_of_sse,
        empty_completion, refresh_error,
    )
}  # fmt: skip


def preset(name: str, **kwargs: Any) -> dict[str, Any]:
    """A ready-made scenario by name (lets HTTP control clients say ``"usage_limit_429"``)."""
    try:
        return PRESETS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None
