"""A TLS ClientHello, parsed from its bytes, and its fingerprints: JA3 and JA4 computed the
standard way (GREASE values left out), plus the details neither hash keeps readable (signature
algorithms, key-share groups, ALPN, versions...), so two clients can be compared field by field."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

SERVER_NAME, SUPPORTED_GROUPS, POINT_FORMATS, SIGNATURE_ALGORITHMS, ALPN = 0, 10, 11, 13, 16
COMPRESS_CERTIFICATE, SUPPORTED_VERSIONS, PSK_MODES, KEY_SHARE, PADDING = 27, 43, 45, 51, 21
STATUS_REQUEST = 5


class Incomplete(ValueError):
    """More bytes are needed before the ClientHello is whole."""


def is_grease(value: int) -> bool:
    """RFC 8701 values (0x0a0a, 0x1a1a, ... 0xfafa): random per connection, left out of fingerprints."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def handshake_message(data: bytes) -> bytes | None:
    """The first handshake message from TLS records at the start of ``data``; None when a
    ClientHello cannot start here (not TLS). Raises Incomplete when more bytes are needed."""
    if len(data) < 5:
        raise Incomplete
    if data[0] != 0x16:
        return None
    message = b""
    offset = 0
    while True:
        if len(data) < offset + 5:
            raise Incomplete
        content_type, _version, length = struct.unpack_from("!BHH", data, offset)
        if content_type != 0x16:
            return None
        if len(data) < offset + 5 + length:
            raise Incomplete
        message += data[offset + 5:offset + 5 + length]
        offset += 5 + length
        if len(message) >= 4:
            needed = 4 + int.from_bytes(message[1:4], "big")
            if len(message) >= needed:
                return message[:needed]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated ClientHello")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(int.from_bytes(self.take(length_bytes), "big"))

    def done(self) -> bool:
        return self.pos >= len(self.data)


def _u16s(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data) - 1, 2)]


def ja4(ciphers: list[int], extensions: list[int], alpn: list[str], versions: list[int],
        signature_algorithms: list[int], sni: bool) -> str:
    """FoxIO's JA4 (TCP): version, SNI, counts and ALPN; sorted ciphers; sorted extensions (SNI
    and ALPN left out) with the signature algorithms in their order. GREASE values are skipped."""
    versions = [v for v in versions if not is_grease(v)]
    tls = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10"}.get(max(versions) if versions else 0, "00")
    ciphers = [c for c in ciphers if not is_grease(c)]
    extensions = [e for e in extensions if not is_grease(e)]
    first = alpn[0] if alpn else ""
    alpn_code = (first[0] + first[-1]) if first else "00"
    part_a = f"t{tls}{'d' if sni else 'i'}{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{alpn_code}"

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"

    part_b = digest(",".join(sorted(f"{c:04x}" for c in ciphers)))
    sorted_ext = ",".join(sorted(f"{e:04x}" for e in extensions if e not in (SERVER_NAME, ALPN)))
    sigs = ",".join(f"{s:04x}" for s in signature_algorithms if not is_grease(s))
    return f"{part_a}_{part_b}_{digest(f'{sorted_ext}_{sigs}' if sigs else sorted_ext)}"


@dataclass
class ClientHello:
    legacy_version: int
    session_id_length: int
    ciphers: list[int]
    compression: list[int]
    extensions: list[int]  # in the order sent, GREASE included
    extension_data: dict[int, bytes] = field(default_factory=dict)

    @classmethod
    def parse(cls, message: bytes) -> ClientHello:
        """``message``: the handshake message (type 1) as :func:`handshake_message` returns it."""
        if not message or message[0] != 1:
            raise ValueError("not a ClientHello")
        r = _Reader(message[4:])
        legacy_version = r.u16()
        r.take(32)  # random
        session_id = r.vector(1)
        ciphers = _u16s(r.vector(2))
        compression = list(r.vector(1))
        extensions: list[int] = []
        data: dict[int, bytes] = {}
        if not r.done():
            ext = _Reader(r.vector(2))
            while not ext.done():
                kind = ext.u16()
                extensions.append(kind)
                data[kind] = ext.vector(2)
        return cls(legacy_version, len(session_id), ciphers, compression, extensions, data)

    # -- decoded extensions ----------------------------------------------------------------------

    def _list(self, kind: int, length_bytes: int, width: int) -> list[int]:
        raw = self.extension_data.get(kind)
        if raw is None:
            return []
        body = _Reader(raw).vector(length_bytes)
        return _u16s(body) if width == 2 else list(body)

    @property
    def server_name(self) -> str | None:
        raw = self.extension_data.get(SERVER_NAME)
        if not raw:
            return None
        names = _Reader(_Reader(raw).vector(2))
        names.u8()  # host_name
        return names.vector(2).decode("ascii", "replace")

    @property
    def groups(self) -> list[int]:
        return self._list(SUPPORTED_GROUPS, 2, 2)

    @property
    def point_formats(self) -> list[int]:
        return self._list(POINT_FORMATS, 1, 1)

    @property
    def signature_algorithms(self) -> list[int]:
        return self._list(SIGNATURE_ALGORITHMS, 2, 2)

    @property
    def versions(self) -> list[int]:
        return self._list(SUPPORTED_VERSIONS, 1, 2)

    @property
    def psk_modes(self) -> list[int]:
        return self._list(PSK_MODES, 1, 1)

    @property
    def cert_compression(self) -> list[int]:
        return self._list(COMPRESS_CERTIFICATE, 1, 2)

    @property
    def alpn(self) -> list[str]:
        raw = self.extension_data.get(ALPN)
        if raw is None:
            return []
        r = _Reader(_Reader(raw).vector(2))
        protocols = []
        while not r.done():
            protocols.append(r.vector(1).decode("ascii", "replace"))
        return protocols

    @property
    def key_shares(self) -> list[int]:
        """The groups a key share was sent for, in order."""
        raw = self.extension_data.get(KEY_SHARE)
        if raw is None:
            return []
        r = _Reader(_Reader(raw).vector(2))
        groups = []
        while not r.done():
            groups.append(r.u16())
            r.vector(2)
        return groups

    # -- fingerprints ----------------------------------------------------------------------------

    def ja3(self) -> str:
        """SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats (GREASE left out)."""
        def join(values: list[int]) -> str:
            return "-".join(str(v) for v in values if not is_grease(v))

        return ",".join([str(self.legacy_version), join(self.ciphers), join(self.extensions), join(self.groups),
                         join(self.point_formats)])

    def ja3_hash(self) -> str:
        return hashlib.md5(self.ja3().encode()).hexdigest()

    def ja4(self) -> str:
        return ja4(self.ciphers, self.extensions, self.alpn, self.versions or [self.legacy_version],
                   self.signature_algorithms, sni=SERVER_NAME in self.extension_data)

    def summary(self) -> dict[str, Any]:
        """Everything that identifies the client, GREASE left out (it is random per connection)."""
        def clean(values: list[int]) -> list[int]:
            return [v for v in values if not is_grease(v)]

        return {
            "ja3": self.ja3(),
            "ja3_hash": self.ja3_hash(),
            "ja4": self.ja4(),
            "grease": any(is_grease(v) for v in self.ciphers + self.extensions + self.groups),
            "legacy_version": self.legacy_version,
            "session_id_length": self.session_id_length,
            "ciphers": clean(self.ciphers),
            "extensions": clean(self.extensions),
            "groups": clean(self.groups),
            "point_formats": self.point_formats,
            "signature_algorithms": clean(self.signature_algorithms),
            "versions": clean(self.versions),
            "psk_modes": clean(self.psk_modes),
            "key_shares": clean(self.key_shares),
            "alpn": self.alpn,
            "cert_compression": self.cert_compression,
            "server_name": self.server_name,
        }
