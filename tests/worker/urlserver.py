"""A real HTTP(S) server for the image-URL tests, in a thread of the test process: each path
has a behaviour (serve, redirect, drip, endless, stall), and the server records what it was
asked and how many body bytes it sent. Only ever bound to 127.0.0.0/8."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

Behaviour = Callable[["_Handler"], None]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.owner.seen.append(self.path)
        behaviour = self.server.owner.routes.get(self.path.split("?", 1)[0])
        if behaviour is None:
            self.send_error(404)
            return
        try:
            behaviour(self)
        except OSError:  # the client hung up: what the caps are for
            self.server.owner.hung_up.set()

    def log_message(self, *args: object) -> None:
        pass

    def body(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        self.server.owner.sent += len(data)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: ImageServer


class ImageServer:
    """`ImageServer(host).route("/a.png", serve(png))`; `.url("/a.png?sig=x")`; `.stop()`."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        assert ipaddress.ip_address(host).is_loopback, "test servers stay on 127.0.0.0/8"
        self.host = host
        self.routes: dict[str, Behaviour] = {}
        self.seen: list[str] = []
        self.sent = 0
        self.stopping = threading.Event()
        self.hung_up = threading.Event()  # a client went away mid-answer
        self._srv = _Server((host, 0), _Handler)
        self._srv.owner = self
        if tls is not None:
            self._srv.socket = tls.wrap_socket(self._srv.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def route(self, path: str, behaviour: Behaviour) -> ImageServer:
        self.routes[path] = behaviour
        return self

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def stop(self) -> None:
        self.stopping.set()
        self._srv.shutdown()
        self._srv.server_close()


def serve(data: bytes, content_type: str = "image/png") -> Behaviour:
    def go(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.body(data)

    return go


def redirect(location: str, status: int = 302) -> Behaviour:
    def go(h: _Handler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return go


def declared(length: int) -> Behaviour:
    """Announces `length` bytes and sends them as long as the client reads."""

    def go(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.send_header("Content-Length", str(length))
        h.end_headers()
        sent = 0
        while sent < length and not h.server.owner.stopping.is_set():
            h.body(b"\0" * 65536)
            sent += 65536

    return go


def endless(chunk: int = 65536) -> Behaviour:
    """A body without Content-Length that never ends (until the client hangs up)."""

    def go(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.end_headers()
        h.body(b"\x89PNG\r\n\x1a\n")
        while not h.server.owner.stopping.is_set():
            h.body(b"\0" * chunk)

    return go


def drip(interval_s: float, body_bytes: int, headers_too: bool = False) -> Behaviour:
    """One byte every `interval_s` (never idle long enough for a read timeout), `body_bytes`
    of body (and as many of padding in the headers, when they drip too): a worker without a
    total time cap would wait for all of it."""

    def go(h: _Handler) -> None:
        stop = h.server.owner.stopping
        head = (
            "HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n"
            f"X-Padding: {'x' * body_bytes}\r\nContent-Length: {body_bytes}\r\n\r\n"
        ).encode()
        if headers_too:
            for b in head:
                h.wfile.write(bytes([b]))
                h.wfile.flush()
                if stop.wait(interval_s):
                    return
        else:
            h.wfile.write(head)
        for _ in range(body_bytes):
            if stop.wait(interval_s):
                return
            h.body(b"\0")

    return go


def stall(h: _Handler) -> None:
    """Headers, then silence (until the client hangs up or the server stops)."""
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.flush()
    h.server.owner.stopping.wait(30)


class Listener:
    """A bare listening socket that only counts who connected (never answers)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]

    def connections(self) -> int:
        """Connections the kernel completed so far (accepted here and closed)."""
        self.sock.setblocking(False)
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    def close(self) -> None:
        self.sock.close()


def self_signed(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA-style certificate for localhost and 127.0.0.1: (its PEM, a server context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wanpod test image server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = folder / "test-ca.pem"
    key_pem = folder / "test-key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_pem, key_pem)
    return cert_pem, ctx


def main(folder: str) -> None:
    """`python -m tests.worker.urlserver DIR` (run with the worker venv, which has cryptography):
    serves DIR/files/* over https on 127.0.0.1 with a throwaway certificate (DIR/test-ca.pem),
    writes its port to DIR/port and runs until stdin closes (for tests in the app's venv)."""
    import sys

    root = Path(folder)
    _, tls = self_signed(root)  # the PEM is root/test-ca.pem
    srv = ImageServer("127.0.0.1", tls=tls)
    for f in sorted((root / "files").iterdir()):
        kind = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}
        srv.route(
            f"/{f.name}", serve(f.read_bytes(), kind.get(f.suffix, "application/octet-stream"))
        )
    (root / "port.tmp").write_text(str(srv.port))
    (root / "port.tmp").rename(root / "port")
    sys.stdin.read()  # until the test closes it
    srv.stop()


if __name__ == "__main__":
    import sys

    main(sys.argv[1])
