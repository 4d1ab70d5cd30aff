"""A TLS front that records how clients connect, then forwards their requests to a plain-HTTP
backend (the fake Codex backend) so they finish their work as against the real one.

Per connection it keeps the ClientHello (peeked from the socket before the handshake, see
:mod:`tests.support.clienthello`), the ALPN the handshake chose and, over HTTP/2, the frames a
client sends before its first request (SETTINGS in their order, the connection WINDOW_UPDATE,
PRIORITY frames) and every request's pseudo-header and header order; over HTTP/1.1 the request
head as sent. :func:`akamai` renders the HTTP/2 part the standard (Akamai) way.

Blocking sockets on threads: it serves a test, not traffic.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hyperframe.frame import Frame, HeadersFrame, PriorityFrame, SettingsFrame, WindowUpdateFrame

from tests.support.clienthello import ClientHello, Incomplete, handshake_message

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "te", "proxy-connection",
              "content-length"}


@dataclass
class Recorded:
    """One client connection as it presented itself."""

    client_hello: dict[str, Any]
    alpn: str | None = None
    h2_frames: list[dict[str, Any]] = field(default_factory=list)  # up to and with the first HEADERS
    requests: list[dict[str, Any]] = field(default_factory=list)  # method, path, headers [(name, value)]


def akamai(frames: list[dict[str, Any]], pseudo_order: list[str]) -> str:
    """SETTINGS|WINDOW_UPDATE|PRIORITY|pseudo-header order, as curl_cffi's ``akamai=`` takes it."""
    settings = next((f["settings"] for f in frames if f["type"] == "SETTINGS"), [])
    window = next((f["increment"] for f in frames if f["type"] == "WINDOW_UPDATE" and f["stream"] == 0), 0)
    priorities = [f"{f['stream']}:{int(f['exclusive'])}:{f['depends_on']}:{f['weight']}" for f in frames
                  if f["type"] == "PRIORITY"]
    return "|".join([";".join(f"{k}:{v}" for k, v in settings), str(window), ",".join(priorities) or "0",
                     ",".join(name[1] for name in pseudo_order)])


class LocalCA:
    """A throw-away CA and a leaf for ``localhost``/127.0.0.1 it signed, written to ``folder``."""

    def __init__(self, folder: Path) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fingerprint test CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
              .not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file = folder / "server.pem"
        self.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM)
                                   + ca.public_bytes(serialization.Encoding.PEM))
        self.key_file = folder / "server.key"
        self.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        context.set_alpn_protocols(["h2", "http/1.1"])
        return context


class FingerprintServer:
    """Listens on 127.0.0.1 (any port); ``origin`` is ``https://localhost:<port>`` so clients send SNI."""

    def __init__(self, ca: LocalCA, backend: str) -> None:
        self.ca = ca
        self.backend = backend.rstrip("/")
        self.connections: list[Recorded] = []
        self._lock = threading.Lock()
        self._context = ca.server_context()
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler, bind_and_activate=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fingerprint-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.port}"

    def start(self) -> FingerprintServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.connections.clear()

    def wait_for(self, predicate: Any, timeout: float = 30) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [c for c in self.connections if predicate(c)]
            if found:
                return found
            time.sleep(0.05)
        raise TimeoutError(f"no matching connection among {len(self.connections)}")

    # -- one connection --------------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(60)
        hello = self._peek_hello(sock)
        if hello is None:
            return
        record = Recorded(ClientHello.parse(hello).summary())
        with self._lock:
            self.connections.append(record)
        try:
            tls = self._context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate: its hello is recorded all the same
        record.alpn = tls.selected_alpn_protocol()
        try:
            if record.alpn == "h2":
                _H2Session(self, tls, record).run()
            else:
                _serve_http1(self, tls, record)
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            tls.close()

    @staticmethod
    def _peek_hello(sock: socket.socket) -> bytes | None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = sock.recv(65536, socket.MSG_PEEK)
            if not data:
                return None
            try:
                return handshake_message(data)
            except Incomplete:
                time.sleep(0.005)
        return None

    def forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> httpx.Response:
        """Send the request on to the backend; the caller iterates and closes the response."""
        sent = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and not k.startswith(":")]
        client = httpx.Client(timeout=60)
        request = client.build_request(method, self.backend + path, headers=sent, content=body)
        return client.send(request, stream=True)


def _response_headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in response.headers.multi_items() if k.lower() not in HOP_BY_HOP]


class _H2Session:
    def __init__(self, server: FingerprintServer, tls: ssl.SSLSocket, record: Recorded) -> None:
        self.server = server
        self.tls = tls
        self.record = record
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8", validate_inbound_headers=False))
        self.raw = b""  # bytes not yet parsed into recorded frames
        self.recording = True
        self.streams: dict[int, dict[str, Any]] = {}
        self.ready: list[int] = []

    def run(self) -> None:
        self.conn.initiate_connection()
        self._flush()
        while True:
            if self.ready:
                self._answer(self.ready.pop(0))
                continue
            if not self._pump():
                return

    def _pump(self) -> bool:
        data = self.tls.recv(65536)
        if not data:
            return False
        if self.recording:
            self._record_frames(data)
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                headers = [(k, v) for k, v in event.headers]
                self.streams[event.stream_id] = {"headers": headers, "body": b""}
                self.record.requests.append({"pseudo": [k for k, _ in headers if k.startswith(":")],
                                             "headers": headers})
            elif isinstance(event, h2.events.DataReceived):
                self.streams[event.stream_id]["body"] += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.ready.append(event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._flush()
                return False
        self._flush()
        return True

    def _record_frames(self, data: bytes) -> None:
        self.raw += data
        if self.raw.startswith(PREFACE):
            self.raw = self.raw[len(PREFACE):]
        while len(self.raw) >= 9 and self.recording:
            frame, length = Frame.parse_frame_header(memoryview(self.raw[:9]))
            if len(self.raw) < 9 + length:
                return
            frame.parse_body(memoryview(self.raw[9:9 + length]))
            self.raw = self.raw[9 + length:]
            entry: dict[str, Any] = {"type": frame.__class__.__name__.removesuffix("Frame").upper(),
                                     "stream": frame.stream_id, "flags": sorted(frame.flags)}
            if isinstance(frame, SettingsFrame):
                if "ACK" in frame.flags:
                    continue
                entry["type"] = "SETTINGS"
                entry["settings"] = list(frame.settings.items())  # hyperframe keeps the wire order
            elif isinstance(frame, WindowUpdateFrame):
                entry["type"] = "WINDOW_UPDATE"
                entry["increment"] = frame.window_increment
            elif isinstance(frame, (PriorityFrame, HeadersFrame)) and (
                    isinstance(frame, PriorityFrame) or "PRIORITY" in frame.flags):
                entry.update(depends_on=frame.depends_on, weight=frame.stream_weight + 1, exclusive=frame.exclusive)
            self.record.h2_frames.append(entry)
            if isinstance(frame, HeadersFrame):
                self.recording = False

    def _answer(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id)
        headers = stream["headers"]
        pseudo = dict((k, v) for k, v in headers if k.startswith(":"))
        response = self.server.forward(pseudo.get(":method", "GET"), pseudo.get(":path", "/"), headers, stream["body"])
        try:
            self.conn.send_headers(stream_id, [(":status", str(response.status_code)), *_response_headers(response)])
            self._flush()
            for chunk in response.iter_raw():
                self._send(stream_id, chunk)
            self.conn.end_stream(stream_id)
            self._flush()
        finally:
            response.close()

    def _send(self, stream_id: int, data: bytes) -> None:
        while data:
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                if not self._pump():
                    raise OSError("client went away")
                continue
            self.conn.send_data(stream_id, data[:window])
            data = data[window:]
            self._flush()

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.tls.sendall(out)


def _serve_http1(server: FingerprintServer, tls: ssl.SSLSocket, record: Recorded) -> None:
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = tls.recv(65536)
            if not data:
                return
            buffer += data
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers = [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines[1:])]
        record.requests.append({"request_line": lines[0], "headers": headers})
        names = {k.lower(): v for k, v in headers}
        if names.get("upgrade", "").lower() == "websocket":
            # Recorded, not served: the client falls back to HTTP, as the backend lets it.
            tls.sendall(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            return
        length = int(names.get("content-length", "0"))
        while len(buffer) < length:
            data = tls.recv(65536)
            if not data:
                return
            buffer += data
        body, buffer = buffer[:length], buffer[length:]
        response = server.forward(method, path, headers, body)
        try:
            payload = response.read()
        finally:
            response.close()
        out = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
        out += [f"{k}: {v}" for k, v in _response_headers(response) if k != "content-encoding"]
        out.append(f"content-length: {len(payload)}")
        tls.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + payload)
