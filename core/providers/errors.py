"""A provider's error answers, classified for key rotation and failover.

``account_effect`` on the resulting ``UpstreamError`` says what happens to the key: ``rate_limited``
(it rests, see core/providers/keys.py), ``refused`` (401/403: the key is invalid) or None (not the
key's fault). ``fails_over`` says whether the next route target may try.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from core.codex.errors import FATAL, RETRY_SAME, ROTATE, UpstreamError, classify_http
from core.providers.model import Provider

# 400 messages that name an optional parameter group the model refuses (core/providers/wires).
_REFUSED_GROUPS = (
    ("reasoning", re.compile(r"reasoning|thinking|budget_tokens", re.IGNORECASE)),
    ("sampling", re.compile(r"temperature|top_p|topP", re.IGNORECASE)),
)
_DURATION = re.compile(r"^([\d.]+)s$")


def _google_retry_delay(raw: bytes) -> float | None:
    """Gemini's ``RetryInfo`` detail (``"retryDelay": "30s"``) on a 429."""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    details = (body.get("error") or {}).get("details") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and isinstance(detail.get("retryDelay"), str) and (match := _DURATION.match(detail["retryDelay"])):
            return float(match[1])
    return None


def classify(provider: Provider, status: int, headers: dict[str, str], raw: bytes) -> UpstreamError:
    base = classify_http(status, headers, raw)
    message = f"{provider.name}: {base.message}"
    if status == 429:
        retry = base.retry_after or _google_retry_delay(raw)
        return UpstreamError(429, base.code or "rate_limit_exceeded", message, retry, "rate_limited", ROTATE)
    if status == 402:  # out of credits (OpenRouter): the key rests like a rate-limited one
        return UpstreamError(402, base.code or "payment_required", message, None, "rate_limited", ROTATE)
    if status in (401, 403) or status == 400 and b"API_KEY_INVALID" in raw:  # Gemini refuses a bad key with a 400
        return UpstreamError(401 if status == 400 else status, base.code or "invalid_api_key", message, None, "refused", ROTATE)
    if status >= 500:
        # 529 is Anthropic's "overloaded": like a 503, the provider (not the key) is busy.
        return UpstreamError(503 if status == 529 else status, base.code or "server_error", message, base.retry_after, None, RETRY_SAME)
    return UpstreamError(status if 400 <= status < 600 else 502, base.code or "provider_error", message, None, None, FATAL)


def refused_group(error: UpstreamError, omitted: set[str]) -> str | None:
    """The optional parameter group a 400 refuses (not yet dropped), else None."""
    if error.status != 400:
        return None
    for group, pattern in _REFUSED_GROUPS:
        if group not in omitted and pattern.search(error.message):
            return group
    return None


def fails_over(error: UpstreamError) -> bool:
    """Whether another route target may succeed where this one failed: the target could not
    serve (no usable key, limits, refused keys, an unknown model, a server error), rather than
    the request itself being wrong."""
    return error.status in (401, 402, 403, 404, 408, 409, 429) or error.status >= 500 or error.action == ROTATE


def no_key_error(provider: Provider, retry_after: float | None) -> UpstreamError:
    if retry_after is not None:
        return UpstreamError(429, "rate_limit_exceeded", f"{provider.name}: every key is rate limited", retry_after, None, ROTATE)
    return UpstreamError(503, "no_provider_key", f"{provider.name}: no usable API key (add one, or re-enable a disabled or invalid one)",
                         None, None, ROTATE)  # fmt: skip



def for_client(error: UpstreamError) -> UpstreamError:
    """The error a client gets when a provider failed: a refused provider key is the proxy's
    problem (502), not the client's credentials (which a 401 would suggest)."""
    if error.account_effect == "refused":
        return UpstreamError(502, "provider_key_refused", error.message, None, None, error.action)
    return error
