"""Credentials out of everything that is shown or kept: header names, query parameters and JSON
members that carry secrets, and the placeholder that replaces them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie", "set-cookie",
})  # fmt: skip
SECRET_QUERY_PARAMS = frozenset({"key", "api_key", "access_token"})
# JSON members whose values are credentials: account tokens pasted into the management API, OAuth
# bodies, provider keys ("key", or a "keys" list).
_SECRET_MEMBER = re.compile(r"token|secret|password|api_?key|^keys?$|authorization|cookie|code_verifier", re.IGNORECASE)


def is_secret_header(name: str) -> bool:
    return name.lower() in SECRET_HEADERS


def redacted_headers(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, REDACTED if is_secret_header(name) else value) for name, value in items]


def _redact_value(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            if _SECRET_MEMBER.search(key) and isinstance(item, str) and item:
                out[key], changed = REDACTED, True
            elif _SECRET_MEMBER.search(key) and isinstance(item, list) and any(isinstance(i, str) for i in item):
                out[key] = [REDACTED if isinstance(i, str) else _redact_value(i)[0] for i in item]
                changed = True
            else:
                out[key], inner = _redact_value(item)
                changed |= inner
        return out, changed
    if isinstance(value, list):
        results = [_redact_value(item) for item in value]
        return [item for item, _ in results], any(changed for _, changed in results)
    return value, False


def redact_json(body: bytes) -> bytes | None:
    """``body`` with credential members replaced, or None when it is not JSON or holds none."""
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    redacted, changed = _redact_value(value)
    return orjson.dumps(redacted) if changed else None
