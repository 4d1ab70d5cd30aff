"""Upstream proxies of the per-account pool: the record, what users may type for one, its URL for
libcurl, and what the management API may show of it (never the password, the user name masked).

An account's calls (token refresh, quota, every turn) go out through the proxy its assignment
names (core/accounts/proxy_pool.py); core/accounts/proxy_health.py checks each proxy.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson

SCHEMES = ("http", "https", "socks5")
# What a URL may say → the scheme stored. socks5h (names resolved by the proxy) is how every
# SOCKS5 proxy is used anyway: the account's DNS lookups must not leave from here either.
_SCHEME_ALIASES = {"http": "http", "https": "https", "socks5": "socks5", "socks5h": "socks5", "socks": "socks5"}
_LIBCURL_SCHEME = {"http": "http", "https": "https", "socks5": "socks5h"}
HEALTH = ("unknown", "ok", "unreachable")
MODES = ("default", "direct", "automatic", "specific")
MAX_NAME = 100


class ProxyInputError(ValueError):
    """What the caller sent cannot become a proxy; the message says why."""


@dataclass(slots=True)
class Proxy:
    id: str
    scheme: str
    host: str
    port: int
    name: str | None = None
    username: str | None = None
    password: str | None = None
    enabled: bool = True
    added_at: float = 0.0
    updated_at: float = 0.0
    status: str = "unknown"  # unknown (never checked) | ok | unreachable
    checked_at: float | None = None
    latency_ms: float | None = None
    exit_ip: str | None = None
    last_error: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Proxy:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        values["enabled"] = bool(values.get("enabled", True))
        return cls(**values)

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["enabled"] = int(self.enabled)
        return row

    def health_row(self) -> dict[str, Any]:
        return {"status": self.status, "checked_at": self.checked_at, "latency_ms": self.latency_ms,
                "exit_ip": self.exit_ip, "last_error": self.last_error}  # fmt: skip

    @property
    def key(self) -> tuple[str, str, int, str]:
        """What makes two entries the same proxy (an import updates it rather than adding another)."""
        return self.scheme, self.host.lower(), self.port, self.username or ""

    @property
    def label(self) -> str:
        """How logs and messages name it: its name, else host:port (never credentials)."""
        return self.name or self.address

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self) -> str:
        """The URL libcurl gets, credentials percent-encoded (libcurl decodes them)."""
        login = ""
        if self.username is not None:
            login = quote(self.username, safe="")
            if self.password is not None:
                login += ":" + quote(self.password, safe="")
            login += "@"
        return f"{_LIBCURL_SCHEME[self.scheme]}://{login}{self.address}"

    def masked_url(self) -> str:
        login = f"{mask(self.username)}{':' + '•' * 6 if self.password else ''}@" if self.username else ""
        return f"{self.scheme}://{login}{self.address}"

    def public(self) -> dict[str, Any]:
        """What the management API shows: the user name masked, the password never."""
        return {"id": self.id, "name": self.name, "scheme": self.scheme, "host": self.host, "port": self.port,
                "username": mask(self.username), "has_password": bool(self.password), "url": self.masked_url(),
                "enabled": self.enabled, "added_at": self.added_at, "status": self.status, "checked_at": self.checked_at,
                "latency_ms": self.latency_ms, "exit_ip": self.exit_ip, "last_error": self.last_error}  # fmt: skip

    def export(self, secrets_too: bool) -> dict[str, Any]:
        """The import format. Without ``secrets_too`` the credentials are left out altogether."""
        entry: dict[str, Any] = {"name": self.name, "scheme": self.scheme, "host": self.host, "port": self.port,
                                 "enabled": self.enabled}  # fmt: skip
        if secrets_too:
            entry["username"], entry["password"] = self.username, self.password
        elif self.username or self.password:
            entry["credentials_omitted"] = True
        return entry


def mask(value: str | None) -> str | None:
    """``alice`` → ``al•••``: enough to tell two apart, not enough to use."""
    if not value:
        return value
    return value[:2] + "•••" if len(value) > 4 else "•••"


def new_id() -> str:
    return "px_" + secrets.token_hex(6)


def _port(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ProxyInputError(f"the port must be a number from 1 to 65535, not {value!r}")
    return value


def _host(value: Any) -> str:
    host = value.strip().strip("[]") if isinstance(value, str) else ""
    if not host or len(host) > 253 or any(c in host for c in " /@?#\\"):
        raise ProxyInputError(f"{value!r} is not a host name or address")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ProxyInputError(f"{value!r} is not a host name or address") from None
    return host


def _scheme(value: Any) -> str:
    scheme = _SCHEME_ALIASES.get(str(value or "http").strip().lower())
    if scheme is None:
        raise ProxyInputError(f"the scheme must be one of {', '.join(SCHEMES)}, not {value!r}")
    return scheme


def _text(value: Any, what: str, limit: int = 500) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit or any(c in value for c in "\r\n\0"):
        raise ProxyInputError(f"{what} must be a single line of text")
    return value


def parse_text(text: str) -> dict[str, Any]:
    """One proxy as people write it: a URL (``socks5://user:pass@host:1080``, ``http://host:3128``)
    or a provider's list line ``host:port`` / ``host:port:user:pass`` (HTTP)."""
    text = text.strip()
    if "://" in text:
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            raise ProxyInputError(f"{text.split('@')[-1]!r} has no usable port") from None
        if port is None or not parts.hostname:
            raise ProxyInputError("a proxy URL needs a host and a port, e.g. socks5://host:1080")
        if parts.path not in ("", "/") or parts.query:
            raise ProxyInputError("a proxy URL is scheme://[user:password@]host:port, nothing after the port")
        return {"scheme": parts.scheme, "host": parts.hostname, "port": port,
                "username": unquote(parts.username) if parts.username is not None else None,
                "password": unquote(parts.password) if parts.password is not None else None}  # fmt: skip
    pieces = text.split(":")
    if len(pieces) in (2, 4):
        entry: dict[str, Any] = {"scheme": "http", "host": pieces[0], "port": pieces[1]}
        if len(pieces) == 4:
            entry.update(username=pieces[2], password=pieces[3])
        return entry
    raise ProxyInputError("not a proxy: give scheme://[user:password@]host:port or host:port[:user:password]")


def proxy_fields(entry: Any) -> dict[str, Any]:
    """A proxy's connection fields and name from a URL text or an object (``{"url"}`` or
    ``{"scheme", "host", "port", "username", "password"}``, plus ``name``, ``enabled``)."""
    if isinstance(entry, str):
        entry = {"url": entry}
    if not isinstance(entry, dict):
        raise ProxyInputError("each proxy must be a URL or an object")
    source = dict(entry)
    if isinstance(source.get("url"), str):
        source = {**source, **parse_text(source.pop("url"))}
    elif "url" in source:
        raise ProxyInputError("url must be a text such as socks5://host:1080")
    values: dict[str, Any] = {"scheme": _scheme(source.get("scheme")), "host": _host(source.get("host")),
                              "port": _port(source.get("port")),
                              "username": _text(source.get("username"), "the user name"),
                              "password": _text(source.get("password"), "the password")}  # fmt: skip
    if values["password"] is not None and values["username"] is None:
        raise ProxyInputError("a password needs a user name")
    name = _text(source.get("name"), "the name", MAX_NAME)
    values["name"] = name.strip() if name else None
    if "enabled" in source:
        if not isinstance(source["enabled"], bool):
            raise ProxyInputError("enabled must be true or false")
        values["enabled"] = source["enabled"]
    return values


def new_proxy(entry: Any) -> Proxy:
    now = time.time()
    return Proxy(id=new_id(), added_at=now, updated_at=now, **proxy_fields(entry))


def exit_ip_of(body: bytes) -> str | None:
    """The address a "what is my IP" answer names: ipify's ``{"ip"}``, httpbin's ``{"origin"}``,
    or plain text."""
    text = body[:200].decode("utf-8", "replace").strip()
    try:
        parsed = orjson.loads(body) if text.startswith("{") else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        text = str(parsed.get("ip") or parsed.get("origin") or "").split(",")[0].strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
