"""Download an input image given as a URL (`images[].image: "https://..."`), safely.

`ImageFetcher(settings).fetch(image_url)` returns the same `ImageInput` a base64 image gives
(content checked by `inputs.image_from_bytes`) or raises `InputError` naming `images[i].image`,
what was wrong and what is allowed. Against a hostile URL:

- Address: the host is resolved once per connection (the resolver is a constructor parameter)
  and the worker connects to the checked address itself, so DNS rebinding cannot swap it; the
  address actually connected to is checked again. Refused unless `IMAGE_URL_ALLOW_PRIVATE`
  (loopback and private ranges) or `IMAGE_URL_ALLOW_NETWORKS` (listed networks) say otherwise:
  loopback, private (RFC 1918, CGNAT, ULA, ...), link-local (`IMAGE_URL_ALLOW_NETWORKS` only:
  clouds serve metadata-like services across the whole range); never: cloud metadata addresses,
  unspecified, multicast, reserved, broadcast. IPv4-mapped, 6to4 and Teredo IPv6 addresses are
  judged by the IPv4 address they carry. A name with any refused address is refused.
- Redirects are followed by hand, at most `MAX_REDIRECTS`, each target checked like the job's
  URL (scheme, user info) before its host is even resolved; its address at connect time.
- Size: `MAX_IMAGE_BYTES`, refused from `Content-Length` before the body, or as soon as the
  body passes it. Compressed transfer encodings are refused (no decompression bomb).
- Time: `IMAGE_URL_READ_TIMEOUT_S` per connect and per read; `IMAGE_URL_TIMEOUT_S` for the
  whole download, redirects included, enforced by shutting the sockets down when it passes,
  so a server dripping one byte at a time (headers, chunk sizes or body) cannot hold the job.
- No proxy, `.netrc` or environment CA bundle is used (a proxy would hide the real peer):
  `IMAGE_URL_CA_BUNDLE` names extra trusted CAs.
- The query string (often a signature) never reaches a log line or an error message:
  `inputs.url_for_logs` is the only form shown, and urllib3's debug lines lose theirs too.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import InputError
from .inputs import ImageInput, ImageURL, image_from_bytes, url_allowed, url_for_logs, url_problem
from .settings import IPNetwork, Settings

log = logging.getLogger("worker.fetch")

# `resolver(host, port)` -> the IP addresses to try, in order (default: the system's resolver).
Resolver = Callable[[str, int], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Image hosts and CDNs redirect once or twice (short link -> signed storage URL); 5 leaves room
# and stops a redirect loop early.
MAX_REDIRECTS = 5
CHUNK = 64 * 1024  # one read; the size cap is checked after each
# Cloud metadata and host services, refused whatever the settings (they hand out credentials):
# AWS/GCP/Azure/OpenStack/DigitalOcean 169.254.169.254 (and AWS's IPv6 fd00:ec2::254), AWS ECS
# and EKS task credentials 169.254.170.2 / .23 (fd00:ec2::23), Alibaba 100.100.100.200, Oracle
# 192.0.0.192, Azure's wire server 168.63.129.16 (a public address).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "100.100.100.200",
        "192.0.0.192",
        "168.63.129.16",
        "fd00:ec2::254",
        "fd00:ec2::23",
    )
)
ADDRESS_ALLOWED = (
    "a host on a public address (loopback and private ones with IMAGE_URL_ALLOW_PRIVATE=true, "
    "or listed in IMAGE_URL_ALLOW_NETWORKS)"
)
HEADERS = {
    "User-Agent": "wanpod-worker (input image download)",
    "Accept": "image/png, image/jpeg, image/webp, */*;q=0.1",
    "Accept-Encoding": "identity",
}


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (IP literals resolve to themselves)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_problem(
    ip: str, allow_private: bool = False, allowed_networks: Sequence[IPNetwork] = ()
) -> str | None:
    """Why the worker must not connect to `ip` ("a loopback address", ...), None if it may."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) aside
    kind, can_allow = _classify(addr)
    if kind is None:
        return None
    listed = any(addr.version == n.version and addr in n for n in allowed_networks)
    if can_allow == "never":
        return kind
    if listed or (allow_private and can_allow == "private"):
        return None
    return kind


def _classify(addr: IPAddress) -> tuple[str | None, str]:
    """(what the address is, what may allow it: "private" | "listed" | "never")."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        kind, can = _classify(addr.ipv4_mapped)
        return (f"an IPv4-mapped {kind.split(' ', 1)[1]}" if kind else None), can
    if addr in METADATA_ADDRESSES:
        return "a cloud metadata address", "never"
    if addr.is_loopback:
        return "a loopback address", "private"
    if addr.is_unspecified:
        return "an unspecified address", "never"
    if addr.is_multicast:
        return "a multicast address", "never"
    if addr.is_reserved:
        return "a reserved address", "never"
    if addr.is_link_local:
        return "a link-local address", "listed"
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.sixtofour or (addr.teredo[1] if addr.teredo else None)
        if embedded is not None:
            kind, can = _classify(embedded)
            if kind:
                return f"an IPv6 address carrying {kind}", can
        if addr.is_site_local:
            return "a private address", "private"
    if not addr.is_global:
        return "a private address", "private"
    return None, ""


class _Refused(Exception):
    """Raised inside a connection (not an OSError, so urllib3 neither retries nor wraps it)."""

    def __init__(self, problem: str, allowed: str) -> None:
        super().__init__(problem)
        self.problem, self.allowed = problem, allowed


class _Guard:
    """One download's connections: resolves and checks every address before connecting,
    checks the peer after, and shuts every socket down when the total time is up."""

    def __init__(self, settings: Settings, resolver: Resolver) -> None:
        self.s, self.resolver = settings, resolver
        self.expired = False
        self._lock = threading.Lock()
        self._watch: list[socket.socket] = []  # dups: shutdown reaches the TLS socket too

    def problem(self, ip: str) -> str | None:
        return address_problem(ip, self.s.image_url_allow_private, self.s.image_url_allow_networks)

    def connect(
        self, host: str, port: int, timeout: object, options: Sequence[tuple] | None
    ) -> socket.socket:
        """A socket connected to a checked address of `host` (urllib3's `_new_conn`)."""
        try:
            addresses = list(self.resolver(host, port))
        except (OSError, UnicodeError) as e:
            why = getattr(e, "strerror", None) or type(e).__name__
            raise _Refused(
                f"its host {host!r} could not be resolved ({why})", ADDRESS_ALLOWED
            ) from None
        if not addresses:
            raise _Refused(f"its host {host!r} has no address", ADDRESS_ALLOWED)
        for ip in addresses:
            problem = self.problem(ip)
            if problem:
                raise _Refused(f"its host {host!r} resolves to {ip}, {problem}", ADDRESS_ALLOWED)
        wait = timeout if isinstance(timeout, int | float) else self.s.image_url_read_timeout_s
        last = ""
        for ip in addresses:
            if self.expired:
                break
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            self._track(sock)
            try:
                for opt in options or ():
                    sock.setsockopt(*opt)
                sock.settimeout(wait)
                sock.connect((ip, port))
                peer = sock.getpeername()[0]
            except OSError as e:
                sock.close()
                last = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
                continue
            problem = self.problem(peer)  # the address actually connected to
            if problem:
                sock.close()
                raise _Refused(f"its host {host!r} connected to {peer}, {problem}", ADDRESS_ALLOWED)
            return sock
        if self.expired:
            raise TimeoutError("IMAGE_URL_TIMEOUT_S")  # reported as too slow, not refused
        raise _Refused(
            f"could not connect to {host}:{port} ({last})",
            "a URL whose server accepts connections",
        )

    def _track(self, sock: socket.socket) -> None:
        watch = sock.dup()
        with self._lock:
            self._watch.append(watch)
            expired = self.expired
        if expired:
            self._shut(watch)

    def expire(self) -> None:
        """The total time is up: every blocked read (headers, TLS, body) ends now; a connect
        under way ends within its connect timeout, and no new one starts."""
        with self._lock:
            self.expired = True
            socks = list(self._watch)
        for sock in socks:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # not connected (yet, or any more)
            sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            socks, self._watch = self._watch, []
        for sock in socks:
            sock.close()


class _GuardedConnection:
    """Mixed into urllib3's connection classes: the socket comes from the guard."""

    guard: _Guard

    def _new_conn(self) -> socket.socket:
        conn: HTTPConnection = self  # type: ignore[assignment]
        return self.guard.connect(conn.host, conn.port, conn.timeout, conn.socket_options)


class _GuardedAdapter(HTTPAdapter):
    """requests' adapter whose pools build `_GuardedConnection`s for one download."""

    def __init__(self, guard: _Guard) -> None:
        self.guard = guard
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        attrs = {"guard": self.guard}
        plain = type("GuardedHTTPConnection", (_GuardedConnection, HTTPConnection), attrs)
        tls = type("GuardedHTTPSConnection", (_GuardedConnection, HTTPSConnection), attrs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
        }

    def proxy_manager_for(self, *args: object, **kwargs: object) -> object:
        raise _Refused("would go through a proxy", "a direct download")  # trust_env is off


class ImageFetcher:
    """Downloads `ImageURL`s under the settings' limits; `resolver` is injectable for tests."""

    def __init__(self, settings: Settings, resolver: Resolver = system_resolver) -> None:
        self.s = settings
        self.resolver = resolver

    def fetch(self, image: ImageURL) -> ImageInput:
        """Download and check one image, or raise `InputError` for `images[i].image`."""
        return self._fetch(_Download(self, image))

    async def fetch_async(self, image: ImageURL) -> ImageInput:
        """`fetch` in a worker thread; if the job is cancelled meanwhile (RunPod's cancel,
        JOB_TIMEOUT_S), the download's sockets are shut so the thread ends at once."""
        download = _Download(self, image)
        try:
            return await asyncio.to_thread(self._fetch, download)
        except asyncio.CancelledError:
            download.guard.expire()
            raise

    def _fetch(self, download: _Download) -> ImageInput:
        t0, image = time.monotonic(), download.image
        data = download.run()
        checked = image_from_bytes(image.where, image.name, data, self.s)
        log.info(
            "%s: downloaded %s (%d B, %s) in %.2f s",
            image.where,
            image.shown,
            len(data),
            checked.mime,
            time.monotonic() - t0,
        )
        return checked


class _Download:
    """One image's download: the hops, the body and the mapping of failures to refusals."""

    def __init__(self, fetcher: ImageFetcher, image: ImageURL) -> None:
        self.s, self.image = fetcher.s, image
        self.guard = _Guard(fetcher.s, fetcher.resolver)
        self.url = image.url
        self.hops = 0
        self.deadline = time.monotonic() + fetcher.s.image_url_timeout_s

    def refuse(self, problem: str, allowed: str) -> InputError:
        if self.hops:
            problem = f"redirected to {url_for_logs(self.url)}: {problem}"
        return InputError(f"{self.image.where}.image", problem, allowed, self.image.shown)

    def too_slow(self) -> InputError:
        return self.refuse(
            f"did not download within {self.s.image_url_timeout_s:g} s (IMAGE_URL_TIMEOUT_S)",
            "a server that sends the whole image within IMAGE_URL_TIMEOUT_S",
        )

    def run(self) -> bytes:
        timer = threading.Timer(self.s.image_url_timeout_s, self.guard.expire)
        timer.daemon = True
        session = requests.Session()
        session.trust_env = False  # no proxy (it would hide the peer), no .netrc, no env CAs
        adapter = _GuardedAdapter(self.guard)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        timer.start()
        try:
            return self._follow(session)
        except _Refused as e:
            raise self.refuse(e.problem, e.allowed) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            raise self._failure(e) from None
        finally:
            timer.cancel()
            session.close()
            self.guard.close()

    def _follow(self, session: requests.Session) -> bytes:
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0 or self.guard.expired:
                raise self.too_slow()
            wait = min(self.s.image_url_read_timeout_s, left)
            log.debug("%s: GET %s", self.image.where, url_for_logs(self.url))
            with session.get(
                self.url,
                headers=HEADERS,
                stream=True,
                allow_redirects=False,
                timeout=(wait, wait),
                verify=self.s.image_url_ca_bundle or True,
            ) as resp:
                target = session.get_redirect_target(resp)
                if target is None:
                    return self._body(resp)
            if self.hops >= MAX_REDIRECTS:
                raise self.refuse(
                    f"was redirected more than {MAX_REDIRECTS} times",
                    f"a URL that reaches the image in at most {MAX_REDIRECTS} redirects",
                )
            self.url = urllib.parse.urljoin(self.url, target)
            self.hops += 1
            problem = url_problem(self.url, self.s.image_url_allow_http)
            if problem:
                raise self.refuse(problem, url_allowed(self.s.image_url_allow_http))

    def _body(self, resp: requests.Response) -> bytes:
        if resp.status_code != 200:
            try:
                phrase = " " + http.HTTPStatus(resp.status_code).phrase
            except ValueError:
                phrase = ""
            raise self.refuse(
                f"answered HTTP {resp.status_code}{phrase}", "a URL that answers 200 with the image"
            )
        encoding = resp.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise self.refuse(
                f"came compressed (Content-Encoding: {encoding[:40]})",
                "an image sent as is (the worker asks for Accept-Encoding: identity)",
            )
        cap = self.s.max_image_bytes
        allowed = f"at most {cap} bytes (MAX_IMAGE_BYTES)"
        length = resp.headers.get("Content-Length", "").strip()
        if length.isdigit() and int(length) > cap:
            raise self.refuse(f"is {int(length)} bytes (Content-Length)", allowed)
        data = bytearray()
        while True:
            chunk = resp.raw.read1(CHUNK, decode_content=False)
            if self.guard.expired or time.monotonic() > self.deadline:
                raise self.too_slow()
            if not chunk:
                return bytes(data)
            data += chunk
            if len(data) > cap:
                raise self.refuse(f"passed {cap} bytes while downloading", allowed)

    def _failure(self, e: BaseException) -> InputError:
        """A refusal for a failed request; never `str(e)`, which holds the URL's query."""
        if self.guard.expired:
            return self.too_slow()
        chain = _causes(e)
        verify = next((c for c in chain if isinstance(c, ssl.SSLCertVerificationError)), None)
        if verify is not None:
            return self.refuse(
                f"has a TLS certificate the worker does not trust ({verify.verify_message})",
                "a certificate from a public CA, or one whose CA is in IMAGE_URL_CA_BUNDLE",
            )
        bad_url = (
            requests.exceptions.InvalidURL,
            urllib3.exceptions.LocationValueError,
            ValueError,
        )
        if any(isinstance(c, bad_url) for c in chain):
            return self.refuse(
                f"is not a URL the worker can request ({type(chain[-1]).__name__})",
                url_allowed(self.s.image_url_allow_http),
            )
        if any(isinstance(c, ssl.SSLError) for c in chain):
            return self.refuse("failed the TLS handshake", "a server that speaks TLS (https)")
        timeouts = (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)
        if any(isinstance(c, timeouts) for c in chain):
            return self.refuse(
                f"sent nothing for {self.s.image_url_read_timeout_s:g} s "
                "(IMAGE_URL_READ_TIMEOUT_S)",
                "a server that answers within IMAGE_URL_READ_TIMEOUT_S",
            )
        return self.refuse(
            f"broke off the download ({type(chain[-1]).__name__})",
            "a server that sends the whole image",
        )


def _causes(e: BaseException) -> list[BaseException]:
    """`e`, what it wraps (urllib3's `reason`, args, causes), innermost last."""
    out: list[BaseException] = []
    todo: list[BaseException] = [e]
    while todo and len(out) < 20:
        c = todo.pop(0)
        if c in out:
            continue
        out.append(c)
        inner = [getattr(c, "reason", None), c.__cause__, c.__context__, *c.args]
        todo.extend(x for x in inner if isinstance(x, BaseException))
    return out


class _HideQueries(logging.Filter):
    """Drops the query from URLs in urllib3's debug lines (it logs request paths as sent)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                a.split("?", 1)[0] + "?<query hidden>" if isinstance(a, str) and "?" in a else a
                for a in record.args
            )
        return True


_HIDE_QUERIES = _HideQueries()
for _name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection"):
    logging.getLogger(_name).addFilter(_HIDE_QUERIES)
