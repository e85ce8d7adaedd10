"""Two ASGI middlewares in front of Gradio's routes: who may fetch a stored file, and how often a
sign-in may fail.

`FileGuard`: Gradio serves files under `allowed_paths` (the studio's results folder: videos,
thumbnails, kept input images, workflow JSON) to anyone signed in, at `/gradio_api/file=<path>`
(and the older `/gradio_api/file/<path>`). The guard reads the path the way Gradio does (absolute,
symlinks resolved) and, for one inside the results folder, lets the request through only when the
signed-in user may see the job the folder belongs to (`<results>/<job id>/...`), by the same rule
as every job lookup (`Studio.row(rid, caller)`, app/studio/owners.py); a chain's folder
(`<results>/chains/<chain id>/`) by its chain's user; `_`-prefixed folders (the gallery's
placeholders) are shared. Anything else is Gradio's business (its own allowed and
blocked paths, its cache of copies whose names are content hashes). The signed-in user is read
as Gradio reads it: the `access-token-*` cookie looked up in the app's tokens.

`SignInGuard`: Gradio's `POST /login` takes any number of attempts. The guard reads the form's
user name and the client address, refuses with 429 and a message saying when to try again while
either is over its limit (app/access.py's `SignInThrottle`), and records each answer (400: a
failed sign-in, logged with the user name and address, never the password; 200: a success).
Gradio's login page shows nothing for a 429 (it knows 400 and 200 only), so `LOGIN_NOTICE_JS`
(put into the page by app/ui/early_script.py's `EarlyScript`) shows the refusal's message on it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

from app.access import SignInThrottle

log = logging.getLogger("wanpod.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SIGNED_OUT = (
    "Your sign-in has ended (the studio restarted, or you signed out in another tab): "
    "reload the page to sign in again."
)
LOGIN_NOTICE_JS = """
(() => {
  const native = window.fetch.bind(window);
  const show = (text) => {
    let box = document.getElementById("wp-login-notice");
    if (!box) {
      box = document.createElement("div");
      box.id = "wp-login-notice";
      box.setAttribute("role", "alert");
      box.style.cssText = "position:fixed;top:12px;left:50%;transform:translateX(-50%);" +
        "z-index:1000;background:#fde8e8;color:#8a1c1c;border:1px solid #e0a0a0;" +
        "padding:8px 14px;border-radius:6px;font:14px sans-serif;max-width:90vw";
      document.body.appendChild(box);
    }
    box.textContent = String(text);
  };
  window.fetch = async function (input, init) {
    const res = await native(input, init);
    try {
      const url = new URL(String((input && input.url) || input), location.href);
      if (res.status === 429 && /\\/login\\/?$/.test(url.pathname)) {
        show((await res.clone().json()).detail);
      } else if (res.status === 401 && /\\/(gradio_api|wanpod)\\//.test(url.pathname)) {
        show(SIGNED_OUT);  /* every action of the page would fail silently */
      }
    } catch (e) { /* not ours to break: the page keeps its own handling */ }
    return res;
  };
})();
""".replace("SIGNED_OUT", json.dumps(SIGNED_OUT))
FILE_ROUTE = re.compile(r"/gradio_api/file[=/](?P<path>.+)$")
LOGIN_ROUTE = re.compile(r"/login/?$")
MAX_LOGIN_BODY = 64 * 1024  # a sign-in form is a user name and a password


def signed_in_user(scope: Scope) -> str | None:
    """The user Gradio's cookie names (None: not signed in, or no login configured)."""
    app = scope.get("app")
    tokens = getattr(app, "tokens", None) or {}
    cookie_id = getattr(app, "cookie_id", "")
    cookies: dict[str, str] = {}
    for key, value in scope.get("headers") or []:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, val = part.strip().partition("=")
                cookies[name] = val
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(
        f"access-token-unsecure-{cookie_id}"
    )
    return tokens.get(token) if token else None


# How the page's scripts reach these routes: under the studio's root URL as Gradio's config
# names it (a root path behind a proxy included), `studioRoot()` + the route's PATH.
ROOT_JS = r"""
const studioRoot = () => String((window.gradio_config && window.gradio_config.root) ||
  location.href.split(/[?#]/)[0]).replace(/\/+$/, "");
"""


class PageRoute:
    """ASGI middleware for one of the studio's own routes that its page calls (app/ui/live_route.py,
    app/ui/health_route.py): a GET of `<root><PATH><rest>` goes to `handle` with the signed-in
    user (with a login configured and no one signed in: 401, as Gradio's own routes answer);
    everything else passes through to Gradio untouched."""

    PATH = ""

    def __init__(self, app: ASGIApp, studio: Any) -> None:
        self.app = app
        self.studio = studio

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        _, found, rest = path.rpartition(self.PATH)
        if not found or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        user = signed_in_user(scope)
        if user is None and getattr(scope.get("app"), "auth", None):
            await answer(send, 401, "Not signed in: sign in to the studio first.", [])
            return
        await self.handle(scope, receive, send, rest, user)

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, rest: str, user: str | None
    ) -> None:
        raise NotImplementedError


async def answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + headers})
    await send({"type": "http.response.body", "body": body})


class FileGuard:
    """ASGI middleware: a stored file of a job only for a user who may see that job."""

    def __init__(self, app: ASGIApp, studio: Any) -> None:
        self.app = app
        self.studio = studio

    def allowed(self, scope: Scope, raw: str) -> bool:
        return self.studio.may_read(raw, self.studio.caller(signed_in_user(scope)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = FILE_ROUTE.search(scope.get("path", "")) if scope.get("type") == "http" else None
        if match and not self.allowed(scope, match["path"]):
            await answer(send, 403, f"File not allowed: {match['path']}.", [])
            return
        await self.app(scope, receive, send)


class SignInGuard:
    """ASGI middleware: failed sign-ins throttled per user name and per client address."""

    def __init__(self, app: ASGIApp, throttle: SignInThrottle | None = None) -> None:
        self.app = app
        self.throttle = throttle or SignInThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        if not LOGIN_ROUTE.search(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False) and size <= MAX_LOGIN_BODY
        body = b"".join(chunks)
        user = await _username(scope, body)
        address = (scope.get("client") or ("?", 0))[0]
        wait = self.throttle.wait_s(user, address, time.monotonic())
        if wait > 0:
            log.warning("sign-in refused for user %s from %s: too many failures", _shown(user),
                        address)  # fmt: skip
            detail = (
                f"Too many failed sign-ins for this user or from this address; try again in "
                f"{wait:.0f} s."
            )
            await answer(send, 429, detail, [(b"retry-after", str(round(wait + 0.5)).encode())])
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message.get("status")
                now = time.monotonic()
                if status == 400:
                    n = self.throttle.failed(user, address, now)
                    log.warning("sign-in failed for user %s from %s (%d failures in %.0f s)",
                                _shown(user), address, n, self.throttle.window_s)  # fmt: skip
                elif status == 200:
                    self.throttle.succeeded(user)
            await send(message)

        await self.app(scope, replay, observe)


async def _username(scope: Scope, body: bytes) -> str:
    """The form's user name, as Gradio reads it (the page posts multipart, curl urlencoded)."""

    async def once() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, once).form()
    except Exception:  # a malformed form: Gradio answers it (422); counted under no name
        return ""
    return str(form.get("username") or "").strip()


def _shown(user: str) -> str:
    """A user name as a log line shows it: quoted, printable, at most 64 characters."""
    return repr(user[:64])
