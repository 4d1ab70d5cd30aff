"""How upstream connections present themselves: the real Codex CLI's TLS and HTTP/2 fingerprint.

The CLI (Rust: reqwest over hyper/h2, rustls 0.23 with aws-lc-rs) was recorded against a local TLS
server; ``codex_cli.json`` beside this module is that recording, with the CLI version it came
from (tests/cli/test_codex_fingerprint.py records the CLI and this proxy side by side and compares
them). A :class:`Fingerprint` turns the recording into curl-impersonate options, set once on each
pooled handle (``CurlDriver._configure`` calls :meth:`Fingerprint.apply`).

Two things rustls does that BoringSSL cannot copy exactly:

- rustls shuffles its ClientHello extensions for every connection. BoringSSL's own shuffle would
  also bring back the renegotiation_info extension, so each handle gets its own random order of
  the recorded set instead, never ending on an empty extension (BoringSSL would add padding
  there; rustls never pads). New connections thus vary as the CLI's do.
- rustls signals secure renegotiation with the TLS_EMPTY_RENEGOTIATION_INFO_SCSV cipher value
  (0x00ff). BoringSSL has no way to send that value, and with an explicit extension list it sends
  no renegotiation_info either: the one recorded difference (it only matters to TLS 1.2, which the
  backend does not negotiate).
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from curl_cffi import CurlHttpVersion, CurlOpt, CurlSslVersion
from curl_cffi.requests.impersonate import TLS_CIPHER_NAME_MAP, TLS_EC_CURVES_MAP

SCSV_RENEGOTIATION = 0x00FF  # a signalling value, not a cipher: BoringSSL cannot send it
EMPTY_EXTENSIONS = frozenset({23, 35})  # extended_master_secret, session_ticket (no ticket yet): no body
ALPN = 16

# IANA SignatureScheme values → the names BoringSSL's SSL_SIG_HASH_ALGS takes.
SIGNATURE_NAMES = {
    0x0401: "rsa_pkcs1_sha256", 0x0501: "rsa_pkcs1_sha384", 0x0601: "rsa_pkcs1_sha512",
    0x0403: "ecdsa_secp256r1_sha256", 0x0503: "ecdsa_secp384r1_sha384", 0x0603: "ecdsa_secp521r1_sha512",
    0x0804: "rsa_pss_rsae_sha256", 0x0805: "rsa_pss_rsae_sha384", 0x0806: "rsa_pss_rsae_sha512",
    0x0807: "ed25519", 0x0904: "mldsa44", 0x0905: "mldsa65", 0x0906: "mldsa87",
}

SetOpt = Callable[[int, "int | bytes"], None]  # one handle's checked setopt: a number or a string option


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One client's ClientHello and HTTP/2 preface, as curl options. Hashable: handles are pooled
    per :class:`core.upstream.driver.Profile`, which holds one."""

    name: str
    client_version: str
    ciphers: str  # OpenSSL-style cipher list, in the client's order
    extensions: tuple[int, ...]  # the set sent (each handle shuffles it)
    groups: str
    key_shares: int
    signature_algorithms: str
    alpn: bool
    http2_settings: str
    http2_window_update: int
    http2_pseudo_order: str  # "msap": :method, :scheme, :authority, :path
    accept_encoding: str

    def extension_order(self, rng: random.Random | None = None) -> str:
        """A random order of the extension set whose last extension has a body."""
        order = list(self.extensions)
        (rng or random).shuffle(order)
        if order[-1] in EMPTY_EXTENSIONS:
            last = next(i for i in range(len(order) - 1, -1, -1) if order[i] not in EMPTY_EXTENSIONS)
            order[last], order[-1] = order[-1], order[last]
        return "-".join(str(e) for e in order)

    def apply(self, setopt: SetOpt) -> None:
        """Configure one easy handle (once, when it is made). Replaces any browser impersonation."""
        setopt(CurlOpt.SSLVERSION, int(CurlSslVersion.TLSv1_2 | CurlSslVersion.MAX_DEFAULT))
        setopt(CurlOpt.SSL_CIPHER_LIST, self.ciphers.encode())
        setopt(CurlOpt.TLS_EXTENSION_ORDER, self.extension_order().encode())
        setopt(CurlOpt.SSL_EC_CURVES, self.groups.encode())
        setopt(CurlOpt.TLS_KEY_SHARES_LIMIT, self.key_shares)
        setopt(CurlOpt.SSL_SIG_HASH_ALGS, self.signature_algorithms.encode())
        setopt(CurlOpt.SSL_ENABLE_ALPN, int(self.alpn))
        setopt(CurlOpt.SSL_ENABLE_ALPS, 0)
        setopt(CurlOpt.SSL_ENABLE_TICKET, 1)
        setopt(CurlOpt.TLS_GREASE, 0)
        setopt(CurlOpt.TLS_STATUS_REQUEST, int(5 in self.extensions))
        setopt(CurlOpt.TLS_SIGNED_CERT_TIMESTAMPS, int(18 in self.extensions))
        setopt(CurlOpt.SSL_CERT_COMPRESSION, b"")
        setopt(CurlOpt.SSL_PERMUTE_EXTENSIONS, 0)
        if self.alpn:
            # HTTP/2 where TLS offers it (ALPN), as the CLI's client does; 1.1 on plain http://,
            # where V2_0 would add an ``Upgrade: h2c`` offer the CLI never sends.
            setopt(CurlOpt.HTTP_VERSION, int(CurlHttpVersion.V2TLS))
            setopt(CurlOpt.HTTP2_SETTINGS, self.http2_settings.encode())
            setopt(CurlOpt.HTTP2_WINDOW_UPDATE, self.http2_window_update)
            setopt(CurlOpt.HTTP2_PSEUDO_HEADERS_ORDER, self.http2_pseudo_order.encode())
            setopt(CurlOpt.HTTP2_NO_PRIORITY, 1)
        else:
            setopt(CurlOpt.HTTP_VERSION, int(CurlHttpVersion.V1_1))
        setopt(CurlOpt.ACCEPT_ENCODING, self.accept_encoding.encode())


def reference() -> dict[str, Any]:
    """The recording this profile comes from (core/upstream/codex_cli.json)."""
    return json.loads(resources.files("core.upstream").joinpath("codex_cli.json").read_text(encoding="utf-8"))


def _from_recording(name: str, version: str, tls: dict[str, Any], http2: dict[str, Any] | None,
                    accept_encoding: str) -> Fingerprint:
    ciphers = [TLS_CIPHER_NAME_MAP[c] for c in tls["ciphers"] if c != SCSV_RENEGOTIATION]
    settings = ";".join(f"{k}:{v}" for k, v in http2["settings"]) if http2 else ""
    return Fingerprint(
        name=name,
        client_version=version,
        ciphers=":".join(ciphers),
        extensions=tuple(tls["extensions"]),
        groups=":".join(TLS_EC_CURVES_MAP[g] for g in tls["groups"]),
        key_shares=len(tls["key_shares"]),
        signature_algorithms=",".join(SIGNATURE_NAMES[s] for s in tls["signature_algorithms"]),
        alpn=ALPN in tls["extensions"],
        http2_settings=settings,
        http2_window_update=http2["window_update"] if http2 else 0,
        http2_pseudo_order=http2["pseudo_header_order"].replace(",", "") if http2 else "",
        accept_encoding=accept_encoding,
    )


@functools.cache
def codex_cli() -> Fingerprint:
    """The CLI's HTTPS client (every HTTP call it makes)."""
    ref = reference()
    return _from_recording("codex_cli", ref["cli_version"], ref["https"]["tls"], ref["https"]["http2"],
                           ref["https"]["accept_encoding"])


@functools.cache
def codex_cli_websocket() -> Fingerprint:
    """The CLI's WebSocket client: the same TLS without ALPN, HTTP/1.1 upgrade."""
    ref = reference()
    return _from_recording("codex_cli_websocket", ref["cli_version"], ref["websocket"]["tls"], None,
                           ref["https"]["accept_encoding"])


PROFILES = {"codex_cli": codex_cli}
WEBSOCKET_PROFILES = {"codex_cli": codex_cli_websocket}


def named(name: str | None) -> Fingerprint | None:
    """The fingerprint ``tls.impersonate`` names, or None for a curl_cffi browser target (or none)."""
    factory = PROFILES.get(name or "")
    return factory() if factory is not None else None


def named_websocket(name: str | None) -> Fingerprint | None:
    """The WebSocket client of the client ``tls.impersonate`` names (None as for ``named``)."""
    factory = WEBSOCKET_PROFILES.get(name or "")
    return factory() if factory is not None else None
