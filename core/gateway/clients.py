"""Who is calling: the key a client presents and whether its address is this machine."""

from __future__ import annotations

import ipaddress

from core.protocols.base import ClientRequest


def is_loopback_address(address: str) -> bool:
    """127.0.0.0/8, ::1 and their IPv4-mapped form; anything unparsable is not loopback."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def extract_api_key(request: ClientRequest) -> str | None:
    """Every protocol accepts every key form, whichever client sent it; the first found wins, in
    this order: ``?key=``, ``x-goog-api-key``, ``x-api-key``, ``Authorization: Bearer``."""
    if key := request.query.get("key"):
        return key
    for header in ("x-goog-api-key", "x-api-key"):
        if value := request.headers.get(header):
            return value
    auth = request.headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return auth.strip() or None
