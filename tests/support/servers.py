"""Small local servers that stand for "some other host" behind the proxy: one speaks HTTPS with its
own self-signed certificate, one echoes raw TCP bytes, one tells a caller its address (a "what is
my IP" service). All bind 127.0.0.1 only."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HELLO = b"hello from the real server, not the proxy"


def self_signed_certificate(folder: Path) -> tuple[Path, Path, bytes]:
    """(cert.pem, key.pem, DER bytes) of a certificate for 127.0.0.1 signed by itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "passthrough.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server-cert.pem", folder / "server-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


class _ThreadedServer:
    """Accepts connections on 127.0.0.1:<port> and handles each in a daemon thread."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self._handle = handle
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._handle(conn)
            except (OSError, ssl.SSLError):
                pass

    def __enter__(self) -> _ThreadedServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._sock.close()


def _read_head(conn: socket.socket | ssl.SSLSocket) -> bool:
    """Read a request up to the end of its headers; False if the client left first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return False
        data += chunk
    return True


def _reply(conn: socket.socket | ssl.SSLSocket, content_type: bytes, body: bytes) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                 % (content_type, len(body), body))


def https_server(cert: Path, key: Path) -> _ThreadedServer:
    """Answers any HTTPS request with ``HELLO``, using its own certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            if _read_head(tls):
                _reply(tls, b"text/plain", HELLO)

    return _ThreadedServer(handle)


def echo_server() -> _ThreadedServer:
    """Sends back every byte it receives."""

    def handle(conn: socket.socket) -> None:
        while chunk := conn.recv(4096):
            conn.sendall(chunk)

    return _ThreadedServer(handle)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None. Connecting to it
    from here makes a client that is not on loopback (as another machine would be)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def ip_echo_server() -> _ThreadedServer:
    """A "what is my IP" endpoint shaped like api.ipify.org's ``?format=json``: answers any GET
    with ``{"ip": "<the address that connected>"}`` — through a proxy, the proxy's exit address."""

    def handle(conn: socket.socket) -> None:
        if _read_head(conn):
            _reply(conn, b"application/json", b'{"ip":"%s"}' % conn.getpeername()[0].encode())

    return _ThreadedServer(handle)
