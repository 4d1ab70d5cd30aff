"""One account's cookies, kept the way a browser keeps them (RFC 6265, the parts a client of one
API host needs): what the backend sets with ``Set-Cookie`` (Cloudflare's ``cf_clearance`` and
``__cf_bm`` among them) is stored with its domain, path and expiry, sent back only on matching
requests of the same account, and forgotten when it expires. Stored with the account, so it
outlives a restart.

``Secure`` cookies go only over https/wss, or to a loopback host (browsers treat it as secure).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

MAX_COOKIES = 50  # per account: a misbehaving upstream cannot grow a jar without bound
_SECURE_SCHEMES = frozenset({"https", "wss"})


@dataclass(frozen=True, slots=True)
class Cookie:
    name: str
    value: str
    domain: str  # lower-case, no leading dot
    host_only: bool  # set without a Domain attribute: that exact host only
    path: str
    expires: float | None  # unix time; None: no expiry given
    secure: bool

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now

    def matches(self, host: str, path: str, secure: bool) -> bool:
        if self.secure and not secure:
            return False
        if host != self.domain and (self.host_only or not host.endswith("." + self.domain) or _is_ip(host)):
            return False
        return path == self.path or (path.startswith(self.path) and (self.path.endswith("/") or path[len(self.path)] == "/"))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _default_path(path: str) -> str:
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[: path.rfind("/")]


def parse_set_cookie(header: str, host: str, request_path: str, now: float) -> Cookie | None:
    """One ``Set-Cookie`` value as sent to ``host``; None when a browser would ignore it."""
    pair, *attributes = header.split(";")
    name, sep, value = pair.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        return None
    domain, path, expires, max_age, secure = "", "", None, None, False
    for attribute in attributes:
        key, _, arg = attribute.partition("=")
        key, arg = key.strip().lower(), arg.strip()
        if key == "domain" and arg:
            domain = arg.lstrip(".").lower()
        elif key == "path":
            path = arg
        elif key == "secure":
            secure = True
        elif key == "max-age":
            try:
                max_age = int(arg)
            except ValueError:
                pass
        elif key == "expires" and arg:
            try:
                expires = parsedate_to_datetime(arg).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    if max_age is not None:
        expires = now + max_age if max_age > 0 else now - 1
    host_only = not domain
    if host_only:
        domain = host
    elif host != domain and (not host.endswith("." + domain) or _is_ip(host)):
        return None  # a domain this host may not set cookies for
    if not path.startswith("/"):
        path = _default_path(request_path)
    return Cookie(name, value, domain, host_only, path, expires, secure)


class CookieJar:
    """The cookies of one account. Changed only on the event loop."""

    __slots__ = ("_cookies",)

    def __init__(self, cookies: Iterable[Cookie] = ()) -> None:
        self._cookies: dict[tuple[str, str, str], Cookie] = {(c.domain, c.path, c.name): c for c in cookies}

    def __bool__(self) -> bool:
        return bool(self._cookies)

    def __len__(self) -> int:
        return len(self._cookies)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CookieJar) and self._cookies == other._cookies

    def names(self) -> list[str]:
        return sorted({c.name for c in self._cookies.values()})

    def update(self, set_cookies: Iterable[str], url: str, now: float | None = None) -> bool:
        """Take the ``Set-Cookie`` values of an answer from ``url``; True when anything changed."""
        now = time.time() if now is None else now
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        changed = False
        for header in set_cookies:
            cookie = parse_set_cookie(header, host, parts.path or "/", now)
            if cookie is None:
                continue
            key = (cookie.domain, cookie.path, cookie.name)
            if cookie.expired(now):
                changed |= self._cookies.pop(key, None) is not None
            elif self._cookies.get(key) != cookie:
                self._cookies.pop(key, None)  # re-inserted last: the oldest go first past MAX_COOKIES
                self._cookies[key] = cookie
                changed = True
        while len(self._cookies) > MAX_COOKIES:
            del self._cookies[next(iter(self._cookies))]
        return changed

    def header(self, url: str, now: float | None = None) -> str | None:
        """The ``Cookie`` header for a request to ``url`` (None: no cookie applies)."""
        if not self._cookies:
            return None
        now = time.time() if now is None else now
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        secure = parts.scheme in _SECURE_SCHEMES or _loopback(host)
        path = parts.path or "/"
        chosen = [c for c in self._cookies.values() if not c.expired(now) and c.matches(host, path, secure)]
        if not chosen:
            return None
        chosen.sort(key=lambda c: -len(c.path))  # longer paths first; stable: older first among equals
        return "; ".join(f"{c.name}={c.value}" for c in chosen)

    def clear(self) -> bool:
        had = bool(self._cookies)
        self._cookies = {}
        return had

    # -- storage -----------------------------------------------------------------------------------------

    def to_json(self, now: float | None = None) -> str | None:
        now = time.time() if now is None else now
        kept = [[c.name, c.value, c.domain, c.host_only, c.path, c.expires, c.secure]
                for c in self._cookies.values() if not c.expired(now)]  # fmt: skip
        return orjson.dumps(kept).decode() if kept else None

    @classmethod
    def from_json(cls, raw: Any) -> CookieJar:
        """A stored jar; anything unreadable counts as empty."""
        if not raw:
            return cls()
        try:
            rows = orjson.loads(raw)
            return cls(Cookie(str(r[0]), str(r[1]), str(r[2]), bool(r[3]), str(r[4]),
                              float(r[5]) if r[5] is not None else None, bool(r[6])) for r in rows)  # fmt: skip
        except (orjson.JSONDecodeError, TypeError, ValueError, IndexError):
            return cls()
