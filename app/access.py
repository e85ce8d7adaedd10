"""Who may open the studio: login, bind address, share link and reverse-proxy root path.

`Access.from_env(env, share=None)` reads, once:
- APP_AUTH: `user:password` pairs, comma-separated (`ann:pw1,bob:pw2`; a password may contain
  `:` but not `,`; spaces around a user or a password are not part of it, as around a pair).
  Users must be unique and non-empty, passwords non-empty.
- APP_ADMINS: user names (comma-separated, each one of APP_AUTH's) who see every user's jobs;
  everyone else sees only their own (app/studio/owners.py).
- APP_ALLOW_PUBLIC_WITHOUT_AUTH: true/false (default false).
- GRADIO_SHARE: true/false (default false); `python -m app --share` passes share=True.
- GRADIO_ROOT_PATH: the path (`/wanpod`) or full URL the studio is served under behind a reverse
  proxy ("" = served at /).
`access.launch_kwargs(host)` returns the `Blocks.launch` keyword arguments (auth, auth_message,
share, root_path) or raises `AccessError` when the studio would be reachable from other machines
(a bind address other than loopback, or a share link) with no login and no explicit permission.
No auth is allowed on localhost. Passwords are `Secret`s (masked in repr) and are compared in
constant time; `secret_values()` lists them for message scrubbing.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.environment import Secret, env_bool
from app.errors import AccessError, ConfigError

ENV_VARS = (
    "APP_AUTH",
    "APP_ADMINS",
    "APP_ALLOW_PUBLIC_WITHOUT_AUTH",
    "GRADIO_SHARE",
    "GRADIO_ROOT_PATH",
)
AUTH_MESSAGE = "WanPod studio: sign in (accounts are set by the operator in APP_AUTH)."


def parse_auth(raw: str | None) -> tuple[tuple[str, Secret], ...]:
    """APP_AUTH -> ((user, Secret(password)), ...); never echoes a password in an error."""
    text = (raw or "").strip()
    if not text:
        return ()
    users: list[tuple[str, Secret]] = []
    for n, pair in enumerate(text.split(","), start=1):
        pair = pair.strip()
        user, sep, password = pair.partition(":")
        user, password = user.strip(), password.strip()
        where = f"APP_AUTH entry {n}" + (f" (user {user!r})" if user and sep else "")
        if not sep:
            raise ConfigError(f"{where} has no ':'; allowed: user:password pairs separated by ','")
        if not user or any(c.isspace() for c in user):
            raise ConfigError(f"{where}: the user name is empty or has spaces")
        if not password:
            raise ConfigError(f"{where}: the password is empty")
        if any(u == user for u, _ in users):
            raise ConfigError(f"{where}: user {user!r} appears twice; each user once")
        users.append((user, Secret(password)))
    return tuple(users)


def parse_admins(raw: str | None, users: tuple[tuple[str, Secret], ...]) -> tuple[str, ...]:
    """APP_ADMINS -> user names; each must be an APP_AUTH user."""
    names = tuple(n.strip() for n in (raw or "").split(",") if n.strip())
    known = {u for u, _ in users}
    for name in names:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none (APP_AUTH is not set)"
            raise ConfigError(
                f"APP_ADMINS names {name!r}, who is not in APP_AUTH; allowed: {allowed}"
            )
    return names


def parse_root_path(raw: str | None) -> str:
    text = (raw or "").strip()
    if not text or text == "/":
        return ""
    if text.startswith(("http://", "https://")):
        return text.rstrip("/")
    if not text.startswith("/") or any(c.isspace() or c in "?#" for c in text):
        raise ConfigError(
            f"GRADIO_ROOT_PATH={raw!r} is not a path; allowed: '/prefix' or a full http(s) URL"
        )
    return text.rstrip("/")


def is_local_host(host: str) -> bool:
    """True when binding to `host` is reachable from this machine only (loopback)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost: assume reachable


@dataclass(frozen=True)
class Credentials:
    """Gradio's `auth` callable: constant-time check against the APP_AUTH accounts."""

    users: tuple[tuple[str, Secret], ...] = field(repr=False)

    def __call__(self, username: str, password: str) -> bool:
        ok = False
        for user, secret in self.users:
            same_user = hmac.compare_digest(user.encode(), (username or "").encode())
            same_pw = hmac.compare_digest(secret.value.encode(), (password or "").encode())
            ok |= same_user and same_pw
        return ok

    def __repr__(self) -> str:
        return f"Credentials({len(self.users)} users)"


SIGNIN_WINDOW_S = 300.0  # failed sign-ins count for five minutes
SIGNIN_PER_USER = 5  # a few typos per user; a password guesser gets 5 tries per 5 minutes
SIGNIN_PER_ADDRESS = 20  # people behind one NAT may all mistype; one guesser is still stopped
SIGNIN_KEYS = 10_000  # users and addresses remembered at most (made-up names cannot grow it)


def address_key(address: str) -> str:
    """The client an address counts for: an IPv6 address by its /64 (one host or network holds
    them all, so a guesser could take a fresh one per try), anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class SignInThrottle:
    """Failed sign-ins per user name and per client address over a sliding window: while either
    has its limit of failures in the window, `wait_s` says how long until the oldest one ages out
    (the login is refused until then, right or wrong password)."""

    def __init__(
        self,
        window_s: float = SIGNIN_WINDOW_S,
        per_user: int = SIGNIN_PER_USER,
        per_address: int = SIGNIN_PER_ADDRESS,
        keys: int = SIGNIN_KEYS,
    ) -> None:
        self.window_s = window_s
        self.limits = {"user": per_user, "address": per_address}
        self.keys = keys
        self._fails: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _keys(self, user: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("user", user), ("address", address_key(address))

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._fails.get(key) or deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        return times

    def wait_s(self, user: str, address: str, now: float) -> float:
        """Seconds until a sign-in of `user` from `address` is taken (0: now)."""
        wait = 0.0
        for key in self._keys(user, address):
            times = self._recent(key, now)
            limit = self.limits[key[0]]
            if len(times) >= limit:
                wait = max(wait, times[-limit] + self.window_s - now)
        return wait

    def failed(self, user: str, address: str, now: float) -> int:
        """Record a failure; returns the user's failures in the window. Past `keys` remembered,
        the longest untouched name or address goes first, one at its limit last: failures
        under made-up names (from many addresses) cannot push out a user being guessed at and
        so give the guesser fresh tries."""
        for key in self._keys(user, address):
            times = self._recent(key, now)
            times.append(now)
            self._fails[key] = times
            self._fails.move_to_end(key)
        count = len(self._fails[("user", user)])
        while len(self._fails) > self.keys:
            key = next((k for k, times in self._fails.items()
                        if len(self._recent(k, now)) < self.limits[k[0]]), None)  # fmt: skip
            if key is None:
                self._fails.popitem(last=False)
            else:
                del self._fails[key]
        return count

    def succeeded(self, user: str) -> None:
        """A right password clears the user's failures (not its address's)."""
        self._fails.pop(("user", user), None)


@dataclass(frozen=True)
class Access:
    users: tuple[tuple[str, Secret], ...] = ()
    admins: tuple[str, ...] = ()
    allow_public_without_auth: bool = False
    share: bool = False
    root_path: str = ""

    @property
    def auth_enabled(self) -> bool:
        return bool(self.users)

    @property
    def usernames(self) -> tuple[str, ...]:
        return tuple(u for u, _ in self.users)

    def secret_values(self) -> tuple[str, ...]:
        return tuple(s.value for _, s in self.users)

    @classmethod
    def from_env(cls, env: Mapping[str, str], share: bool | None = None) -> Access:
        users = parse_auth(env.get("APP_AUTH"))
        return cls(
            users=users,
            admins=parse_admins(env.get("APP_ADMINS"), users),
            allow_public_without_auth=env_bool(env, "APP_ALLOW_PUBLIC_WITHOUT_AUTH"),
            share=env_bool(env, "GRADIO_SHARE") if share is None else share,
            root_path=parse_root_path(env.get("GRADIO_ROOT_PATH")),
        )

    def exposure(self, host: str) -> list[str]:
        """Why the studio would be reachable from other machines (empty: loopback only)."""
        out = []
        if not is_local_host(host):
            out.append(f"it listens on {host} (GRADIO_SERVER_NAME), not only on 127.0.0.1")
        if self.share:
            out.append("a public Gradio share link was asked for (--share / GRADIO_SHARE)")
        return out

    def check(self, host: str) -> None:
        """Raise AccessError when the studio would be public without a login or permission."""
        reasons = self.exposure(host)
        if reasons and not self.auth_enabled and not self.allow_public_without_auth:
            fixes = ["bind to 127.0.0.1"] if not is_local_host(host) else []
            instead = " and ".join([*fixes, *(["drop the share link"] if self.share else [])])
            raise AccessError(
                "refusing to start without a login: "
                + " and ".join(reasons)
                + ", so anyone who finds it could spend your RunPod credit. Set APP_AUTH="
                f"user:password[,user2:password2], or {instead}, or set "
                "APP_ALLOW_PUBLIC_WITHOUT_AUTH=true if something else guards it (a private "
                "Space, a reverse proxy with its own login)."
            )

    def launch_kwargs(self, host: str) -> dict[str, Any]:
        """Keyword arguments for `Blocks.launch` (after `check`): auth, share, root_path."""
        self.check(host)
        kwargs: dict[str, Any] = {"share": self.share, "root_path": self.root_path}
        if self.auth_enabled:
            kwargs["auth"] = Credentials(self.users)
            kwargs["auth_message"] = AUTH_MESSAGE
        return kwargs
