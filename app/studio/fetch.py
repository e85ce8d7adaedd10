"""Download a job's result URL (a presigned S3 link from the worker) into a file, safely.

The worker's answer is not trusted: a result item `{"type": "s3_url", "data": "http://127.0.0.1/..."}`
must not make the studio read its own network. The approach is the worker's (worker/fetch.py, which
app/ cannot import): the studio resolves the host itself, connects to the checked address and
checks the peer again, so DNS rebinding cannot swap it.
- Scheme: `https` only, or the configured S3 endpoint's own origin (`WANPOD_S3_ENDPOINT_URL`,
  default `BUCKET_ENDPOINT_URL`: the worker's bucket; the local stack's moto is on loopback and
  is reached through this setting, never through a blanket loopback allowance). No user info.
- Address (at connect time, and for every redirect): refused are loopback, private, link-local,
  cloud metadata, unspecified, multicast and reserved addresses (IPv4-mapped IPv6 judged by the
  IPv4 it carries), except the configured S3 endpoint's host and port.
- Redirects: followed by hand, at most MAX_REDIRECTS, each target checked like the first URL.
- Size: `WANPOD_RESULT_MAX_MB` (default 2048), from Content-Length and while reading.
- Time: `WANPOD_RESULT_TIMEOUT_S` (default 300) for the whole download, enforced by shutting
  the socket down, so a server dripping a byte at a time holds one download thread that long at
  most; READ_TIMEOUT_S per read.
The query string (the signature) never reaches a message. Refusals are `FetchRefused`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from app.environment import env_float
from app.errors import ConfigError, FetchRefused

ENV_VARS = ("WANPOD_S3_ENDPOINT_URL", "WANPOD_RESULT_MAX_MB", "WANPOD_RESULT_TIMEOUT_S")
MAX_REDIRECTS = 5  # a presigned URL is not redirected at all; 5 stops a loop early
READ_TIMEOUT_S = 30.0  # one read: a healthy S3 answers within seconds
CHUNK = 1 << 20
HEADERS = {"Accept-Encoding": "identity", "User-Agent": "wanpod-studio (result download)"}
Resolver = Callable[[str, int], Sequence[str]]
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.170.23", "100.100.100.200",
              "192.0.0.192", "168.63.129.16", "fd00:ec2::254", "fd00:ec2::23")
)  # fmt: skip


@dataclass(frozen=True)
class FetchSettings:
    s3_endpoint: str = ""  # origin the studio may fetch over http / on a private address
    max_bytes: int = 2048 * 1_000_000
    timeout_s: float = 300.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FetchSettings:
        raw = (env.get("WANPOD_S3_ENDPOINT_URL") or env.get("BUCKET_ENDPOINT_URL") or "").strip()
        if raw and urllib.parse.urlsplit(raw).scheme not in ("http", "https"):
            raise ConfigError(f"WANPOD_S3_ENDPOINT_URL={raw!r} is not an http(s) URL")
        mb = env_float(env, "WANPOD_RESULT_MAX_MB", 2048.0, 1.0, 1_000_000.0, "MB")
        timeout = env_float(env, "WANPOD_RESULT_TIMEOUT_S", 300.0, 1.0, 86400.0, "seconds")
        return cls(raw, int(mb * 1_000_000), timeout)

    @property
    def trusted(self) -> tuple[str, str, int] | None:
        """(scheme, host, port) of the configured S3 endpoint."""
        if not self.s3_endpoint:
            return None
        return _origin(self.s3_endpoint)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def shown(url: str) -> str:
    """The URL as messages show it: no query (a signature), no user info."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def url_problem(url: str, settings: FetchSettings) -> str | None:
    """Why `url` must not be fetched (None: it may, subject to the address check)."""
    try:
        parts = urllib.parse.urlsplit(url)
        origin = _origin(url)
    except ValueError:
        return "is not a URL"
    if parts.username or parts.password:
        return "carries user info"
    if origin[0] == "https" or origin == settings.trusted:
        return None
    return f"uses {origin[0] or 'no scheme'}; allowed: https, or the configured S3 endpoint"


def address_problem(ip: str) -> str | None:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):  # one carrying an IPv4 address is checked as it
        teredo_client = addr.teredo[1] if addr.teredo else None
        addr = addr.ipv4_mapped or addr.sixtofour or teredo_client or addr
    checks = (
        (addr in METADATA, "a cloud metadata address"),
        (addr.is_loopback, "a loopback address"),
        (addr.is_link_local, "a link-local address"),
        (addr.is_unspecified or addr.is_multicast or addr.is_reserved, "a reserved address"),
        (not addr.is_global, "a private address"),
    )
    return next((what for hit, what in checks if hit), None)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Guard:
    """One download's sockets: checked before and after connecting, shut when time is up."""

    def __init__(self, settings: FetchSettings, resolver: Resolver) -> None:
        self.s, self.resolver = settings, resolver
        self.expired = False
        self.lock = threading.Lock()
        self.socks: list[socket.socket] = []

    def connect(self, scheme: str, host: str, port: int, timeout: object) -> socket.socket:
        trusted = (scheme, host.lower(), port) == self.s.trusted
        try:
            addresses = list(self.resolver(host, port))
        except OSError:
            raise FetchRefused(f"its host {host!r} could not be resolved") from None
        for ip in addresses if not trusted else ():
            if problem := address_problem(ip):
                raise FetchRefused(f"its host {host!r} is {ip}, {problem}; allowed: public hosts")
        for ip in addresses:
            sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
            with self.lock:
                if self.expired:
                    sock.close()
                    break
                self.socks.append(sock)
            try:
                sock.settimeout(timeout if isinstance(timeout, int | float) else READ_TIMEOUT_S)
                sock.connect((ip, port))
                peer = sock.getpeername()[0]
            except OSError:
                continue
            if not trusted and (problem := address_problem(peer)):
                raise FetchRefused(f"its host {host!r} connected to {peer}, {problem}")
            return sock
        raise FetchRefused(f"could not connect to {host}:{port}")

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            socks = list(self.socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self.lock:
            socks, self.socks = self.socks, []
        for sock in socks:
            sock.close()


class _Adapter(HTTPAdapter):
    def __init__(self, guard: _Guard) -> None:
        self.guard = guard
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        guard = self.guard

        def new_conn(conn: HTTPConnection) -> socket.socket:
            scheme = "https" if isinstance(conn, HTTPSConnection) else "http"
            return guard.connect(scheme, conn.host, conn.port, conn.timeout)

        plain = type("GuardedHTTP", (HTTPConnection,), {"_new_conn": new_conn})
        tls = type("GuardedHTTPS", (HTTPSConnection,), {"_new_conn": new_conn})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
        }


class Fetcher:
    """`download(url, path)`: the result at `url` into `path` under the settings' limits."""

    def __init__(self, settings: FetchSettings, resolver: Resolver = system_resolver) -> None:
        self.s, self.resolver = settings, resolver

    def download(self, url: str, path: Path) -> int:
        """Bytes written; raises FetchRefused (the partial file removed)."""
        guard = _Guard(self.s, self.resolver)
        timer = threading.Timer(self.s.timeout_s, guard.expire)
        timer.daemon = True
        session = requests.Session()
        session.trust_env = False  # no proxy (it would hide the peer), no .netrc
        session.mount("http://", _Adapter(guard))
        session.mount("https://", _Adapter(guard))
        deadline = time.monotonic() + self.s.timeout_s
        timer.start()
        try:
            return self._follow(session, url, path, guard, deadline)
        except FetchRefused as exc:
            path.unlink(missing_ok=True)
            raise FetchRefused(f"result {shown(url)}: {exc}") from None
        # urllib3's own errors too: the body is read from the raw response, so a reset
        # mid-body (or the time cap cutting the connection as the peer writes, which the
        # kernel may answer with a reset) is urllib3's ProtocolError, not one of requests'
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
            OSError,
            ValueError,
        ) as exc:
            path.unlink(missing_ok=True)
            if guard.expired or time.monotonic() > deadline:
                raise FetchRefused(self._slow(url)) from None
            if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
                raise  # the disk, not the download (the tracker handles a full disk)
            raise FetchRefused(
                f"result {shown(url)}: the download failed ({type(exc).__name__})"
            ) from None
        finally:
            timer.cancel()
            session.close()
            guard.close()

    def _slow(self, url: str) -> str:
        return (
            f"result {shown(url)}: not downloaded within {self.s.timeout_s:g} s "
            "(WANPOD_RESULT_TIMEOUT_S)"
        )

    def _follow(
        self, session: requests.Session, url: str, path: Path, guard: _Guard, deadline: float
    ) -> int:
        for _hop in range(MAX_REDIRECTS + 1):
            if problem := url_problem(url, self.s):
                raise FetchRefused(problem)
            with session.get(url, stream=True, allow_redirects=False, headers=HEADERS,
                             timeout=(READ_TIMEOUT_S, READ_TIMEOUT_S)) as resp:  # fmt: skip
                target = session.get_redirect_target(resp)
                if target is None:
                    return self._body(resp, path, guard, deadline, url)
            url = urllib.parse.urljoin(url, target)
        raise FetchRefused(f"was redirected more than {MAX_REDIRECTS} times")

    def _body(
        self, resp: requests.Response, path: Path, guard: _Guard, deadline: float, url: str
    ) -> int:
        if resp.status_code != 200:
            raise FetchRefused(f"answered HTTP {resp.status_code}")
        cap = self.s.max_bytes
        too_big = f"allowed: at most {cap / 1_000_000:g} MB (WANPOD_RESULT_MAX_MB)"
        length = resp.headers.get("Content-Length", "").strip()
        if length.isdigit() and int(length) > cap:
            raise FetchRefused(f"is {int(length)} bytes; {too_big}")
        size = 0
        with path.open("wb") as fh:
            while chunk := resp.raw.read1(CHUNK, decode_content=False):
                if guard.expired or time.monotonic() > deadline:
                    raise FetchRefused(self._slow(url).split(": ", 1)[1])
                size += len(chunk)
                if size > cap:
                    raise FetchRefused(f"passed {cap} bytes while downloading; {too_big}")
                fh.write(chunk)
        if guard.expired:
            raise FetchRefused(self._slow(url).split(": ", 1)[1])
        return size
