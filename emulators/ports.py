"""How a local server gets its port: the one rule for the emulators, the stack and the tests.

A port chosen free by its starter (bind port 0, read it, close, pass it on) can be taken by any
other process before the server binds it (OSError Errno 98 in a busy two-replica run). So the
server binds port 0 itself, the kernel hands it a port nobody holds, and it says which one on
its standard output, one line: `LISTENING http://HOST:PORT`. Whoever started it reads that line.

- `bind(host, port)`: the server's listening socket, bound (port 0: any free one); serve it with
  aiohttp's `web.SockSite(runner, sock)`. The port is known before the app starts (the control
  plane tells its workers its URL at start-up).
- `announce(sock)`: prints the LISTENING line (after the server accepts connections).
- `announced(text)`: the URL of the first LISTENING line of a server's output, or None.
- `wait_announced(read, alive, deadline_s, what)`: polls a child's output for that line.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

LISTENING = "LISTENING"
_LINE = re.compile(rf"^{LISTENING} (http://\S+:\d+)$", re.MULTILINE)


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket bound to host:port (0: a free port the kernel picks), not yet listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp's TCPSite does
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """http://host:port of a bound socket (the port it really got)."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"


def announce(sock: socket.socket) -> None:
    """Say on standard output where the server listens (the line `announced` reads)."""
    print(f"{LISTENING} {url_of(sock)}", flush=True)


def announced(text: str) -> str | None:
    """The URL of the first LISTENING line in a server's output, or None (not bound yet)."""
    match = _LINE.search(text)
    return match.group(1) if match else None


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def wait_announced(
    read: Callable[[], str], alive: Callable[[], bool], deadline_s: float, what: str
) -> str:
    """Poll `read()` (the child's output so far) until it announces its URL; fail when the child
    exits first (`alive()` false) or after `deadline_s`, with the output's tail."""
    end = time.monotonic() + deadline_s
    while True:
        url = announced(read())
        if url is not None:
            return url
        if not alive():
            raise RuntimeError(f"{what} exited before it listened:\n{read()[-4000:]}")
        if time.monotonic() > end:
            raise TimeoutError(f"{what} did not listen within {deadline_s:g} s:\n{read()[-4000:]}")
        time.sleep(0.05)
