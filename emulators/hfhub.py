"""A local Hugging Face Hub file server: `python -m emulators.hfhub --repos DIR [--port P]`.

It answers the file protocol `huggingface_hub` speaks when HF_ENDPOINT points at it (read from
huggingface_hub 2.4's file_download.py / utils/_http.py), for LFS-stored files such as model
weights:

- `HEAD|GET /{org}/{name}/resolve/{revision}/{path}` on the Hub port answers `302 Found` with
  `Location` on a *second* origin (the CDN port, as the real Hub redirects to its CDN, so the
  client stops there and drops its token), `X-Repo-Commit` (40 hex), `X-Linked-Etag` (the file's
  sha256, quoted: what `hf_hub_download` verifies and caches by), `X-Linked-Size` (bytes),
  `ETag` (the git blob id of the LFS pointer) and `Accept-Ranges: bytes`.
- Missing repository: 401 `X-Error-Code: RepoNotFound`; missing revision: 404
  `RevisionNotFound`; missing file: 404 `EntryNotFound` with `X-Repo-Commit` (the client caches
  the non-existence). With `--token T`, a request without `Authorization: Bearer T` gets 401
  "Invalid credentials in Authorization header" (the Hub's answer to a bad token).
- `GET /cdn/{sha256}/{name}` on the CDN port serves the bytes: `Range: bytes=N-` / `N-M` gives
  `206` with `Content-Range`, no range `200` with `Content-Length`; an unsatisfiable range `416`.

Files live under `DIR/{org}/{name}/{path}`; revision `main` (or the commit id) is accepted.
Test knobs (POST `/_emulator/faults`, JSON): `{"drop": {"<path>": [offset, times]}}` closes the
connection once the body reaches `offset` bytes, `times` times (an interrupted download);
`{"corrupt": ["<path>"]}` serves bytes whose last byte is flipped while the headers still
publish the true sha256 and size. `GET /_emulator/requests` lists what was asked (method, port
kind, path, range, whether a token came). Not emulated: Xet storage (no X-Xet-* headers, so the
client takes the plain HTTP path), small non-LFS files, the /api routes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

log = logging.getLogger("emulators.hfhub")
CHUNK = 64 * 1024


@dataclass
class Published:
    """One file as the Hub publishes it (sha256 and size of the real bytes)."""

    path: Path
    sha256: str
    size: int

    @property
    def pointer_oid(self) -> str:
        """The git blob id of the file's LFS pointer (what the Hub sends as ETag)."""
        pointer = (
            "version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{self.sha256}\nsize {self.size}\n"
        ).encode()
        return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()


@dataclass
class HubState:
    root: Path
    cdn_base: str = ""
    token: str = ""
    drop: dict[str, list[int]] = field(default_factory=dict)  # path -> [offset, times left]
    corrupt: set[str] = field(default_factory=set)
    requests: list[dict] = field(default_factory=list)
    _hashes: dict[Path, tuple[tuple[float, int], Published]] = field(default_factory=dict)
    _by_sha: dict[str, tuple[str, Published]] = field(default_factory=dict)

    def commit(self, repo: str) -> str:
        return hashlib.sha1(f"commit {repo}".encode()).hexdigest()

    def published(self, repo: str, path: str) -> Published | None:
        p = (self.root / repo / path).resolve()
        if self.root.resolve() not in p.parents or not p.is_file():
            return None
        st = p.stat()
        key = (st.st_mtime, st.st_size)
        cached = self._hashes.get(p)
        if cached is None or cached[0] != key:
            h = hashlib.sha256()
            with p.open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            cached = (key, Published(p, h.hexdigest(), st.st_size))
            self._hashes[p] = cached
        self._by_sha[cached[1].sha256] = (path, cached[1])
        return cached[1]


def _error(status: int, code: str, message: str, commit: str | None = None) -> web.Response:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    if commit:
        headers["X-Repo-Commit"] = commit
    return web.json_response({"error": message}, status=status, headers=headers)


def _note(request: web.Request, kind: str) -> None:
    state: HubState = request.app["state"]
    state.requests.append(
        {
            "method": request.method,
            "kind": kind,
            "path": request.path,
            "range": request.headers.get("Range"),
            "token": "Authorization" in request.headers,
        }
    )


async def resolve(request: web.Request) -> web.Response:
    state: HubState = request.app["state"]
    _note(request, "hub")
    if state.token and request.headers.get("Authorization") != f"Bearer {state.token}":
        return _error(401, "", "Invalid credentials in Authorization header")
    repo = f"{request.match_info['org']}/{request.match_info['name']}"
    if not (state.root / repo).is_dir():
        return _error(401, "RepoNotFound", "Repository not found")
    commit = state.commit(repo)
    if request.match_info["revision"] not in ("main", commit):
        return _error(404, "RevisionNotFound", "Invalid rev id: " + request.match_info["revision"])
    path = request.match_info["path"]
    pub = state.published(repo, path)
    if pub is None:
        return _error(404, "EntryNotFound", "Entry not found", commit)
    location = f"{state.cdn_base}/cdn/{pub.sha256}/{Path(path).name}"
    return web.Response(
        status=302,
        headers={
            "Location": location,
            "X-Repo-Commit": commit,
            "X-Linked-Etag": f'"{pub.sha256}"',
            "X-Linked-Size": str(pub.size),
            "ETag": f'"{pub.pointer_oid}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "text/plain; charset=utf-8",
        },
        text=f"Found. Redirecting to {location}",
    )


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end inclusive), None for no range, "bad" for an unsatisfiable one."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    first, _, last = spec.partition("-")
    if unit.strip() != "bytes" or "," in spec or not first.strip().isdigit():
        return None  # what the Hub's CDN does with ranges it does not serve: the whole file
    start = int(first)
    end = int(last) if last.strip().isdigit() else size - 1
    if start >= size or end < start:
        return "bad"
    return start, min(end, size - 1)


async def cdn(request: web.Request) -> web.StreamResponse:
    state: HubState = request.app["state"]
    _note(request, "cdn")
    found = state._by_sha.get(request.match_info["sha"])
    if found is None:
        return web.Response(status=403, text="AccessDenied")
    path, pub = found
    rng = _parse_range(request.headers.get("Range"), pub.size)
    if rng == "bad":
        return web.Response(status=416, headers={"Content-Range": f"bytes */{pub.size}"})
    start, end = rng if isinstance(rng, tuple) else (0, pub.size - 1)
    headers = {
        "ETag": f'"{pub.sha256}"',
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Length": str(end - start + 1),
        "Content-Disposition": f'inline; filename="{Path(path).name}"',
    }
    if isinstance(rng, tuple):
        headers["Content-Range"] = f"bytes {start}-{end}/{pub.size}"
    resp = web.StreamResponse(status=206 if isinstance(rng, tuple) else 200, headers=headers)
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    drop = state.drop.get(path)
    cut = drop[0] if drop and drop[1] > 0 and drop[0] >= start else None
    if cut is not None:
        drop[1] -= 1
    pos = start
    with pub.path.open("rb") as f:
        f.seek(start)
        while pos <= end:
            n = min(CHUNK, end - pos + 1)
            if cut is not None:
                n = min(n, cut - pos)
                if n <= 0:  # the connection drops here, mid-body
                    request.transport.close()
                    return resp
            chunk = bytearray(f.read(n))
            if path in state.corrupt and pos + len(chunk) == pub.size:
                chunk[-1] ^= 0xFF
            await resp.write(bytes(chunk))
            pos += len(chunk)
    await resp.write_eof()
    return resp


async def set_faults(request: web.Request) -> web.Response:
    state: HubState = request.app["state"]
    body = await request.json()
    state.drop = {k: [int(v[0]), int(v[1])] for k, v in body.get("drop", {}).items()}
    state.corrupt = set(body.get("corrupt", []))
    if body.get("clear_requests"):
        state.requests.clear()
    return web.json_response({"drop": state.drop, "corrupt": sorted(state.corrupt)})


async def list_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app["state"].requests)


def create_app(state: HubState) -> web.Application:
    app = web.Application()
    app["state"] = state
    app.router.add_route("POST", "/_emulator/faults", set_faults)
    app.router.add_route("GET", "/_emulator/requests", list_requests)
    route = "/{org}/{name}/resolve/{revision}/{path:.+}"
    app.router.add_route("HEAD", route, resolve)
    app.router.add_route("GET", route, resolve)
    app.router.add_route("HEAD", "/cdn/{sha}/{file}", cdn)
    app.router.add_route("GET", "/cdn/{sha}/{file}", cdn)
    return app


async def serve(state: HubState, host: str, port: int, cdn_port: int) -> None:
    runner = web.AppRunner(create_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    hub = web.TCPSite(runner, host, port)
    cdn_site = web.TCPSite(runner, host, cdn_port)
    await hub.start()
    await cdn_site.start()
    ports = [a[1] for a in runner.addresses]
    state.cdn_base = f"http://{host}:{ports[1]}"
    print(f"READY http://{host}:{ports[0]} cdn {state.cdn_base}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m emulators.hfhub", description=__doc__.split("\n")[0]
    )
    p.add_argument("--repos", type=Path, required=True, help="DIR holding {org}/{name}/{path}")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="the Hub's port (0: any free one)")
    p.add_argument("--cdn-port", type=int, default=0, help="the CDN's port (0: any free one)")
    p.add_argument("--token", default="", help="require Authorization: Bearer TOKEN")
    args = p.parse_args(argv)
    if not args.repos.is_dir():
        print(f"--repos {args.repos}: not a folder", file=sys.stderr)
        return 2
    state = HubState(args.repos, token=args.token)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(state, args.host, args.port, args.cdn_port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
