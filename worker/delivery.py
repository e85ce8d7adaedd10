"""Deliver output files: base64 in the result, or S3 (boto3) with a presigned URL.

Files are read straight from ComfyUI's output folder when it is shared (COMFY_OUTPUT_DIR), else
streamed from `/view`. base64 mode checks the result size BEFORE encoding anything: over
RESULT_MAX_BYTES it fails with a message that says how to enable S3 (RunPod rejects big results
after the job, worker-comfyui #129/#167). Encoding is one pass (pybase64's SIMD encoder when
installed, straight to a `str`; else binascii into a preallocated buffer); peak memory 2.33x
(2.67x) the file. S3 mode streams the file with `upload_file` (multipart, bounded memory), real
ContentType, key `[prefix/]<job id>/[subfolder/]<file name>` (`s3_key`), and returns a presigned
GET URL.

What ComfyUI reports is not trusted as a path (a custom node, or a compromised ComfyUI, can name
`{"filename": "environ", "subfolder": "/proc/self"}`): `locate` delivers only outputs of type
`output` that are regular files inside COMFY_OUTPUT_DIR once symlinks are resolved (without a
shared folder: plain relative names, fetched through `/view`); the rest is refused with a
`Refused` reason that becomes an `errors` entry of the result, never a read.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .comfy import ComfyClient
from .errors import DeliveryError, OutputError, ResultTooLarge
from .outputs import OutputFile
from .settings import S3Settings, Settings

log = logging.getLogger("worker.delivery")
ITEM_OVERHEAD = 512  # JSON keys and metadata per item
_CHUNK = 3 * (1 << 20)  # multiple of 3: chunks encode without padding


@dataclass
class Located:
    file: OutputFile
    path: Path | None  # on the shared filesystem, or None (fetch through /view)
    size: int | None
    data: bytes = field(default=b"", repr=False)  # an output that exists only in memory


def b64_size(n: int) -> int:
    return 4 * ((n + 2) // 3)


try:  # SIMD base64 (about 20x faster than binascii; str result without an extra copy)
    from pybase64 import b64encode_as_string as _fast_b64
except ImportError:  # pragma: no cover - the image installs it; binascii is the fallback
    _fast_b64 = None


def b64_text(data: bytes) -> str:
    if _fast_b64 is not None:
        return _fast_b64(data)
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64_file(path: Path, size: int) -> str:
    """base64 of a file in one pass. With pybase64: the file's bytes plus the text (2.33x);
    without: chunked into a preallocated buffer, then the text (2.67x)."""
    if _fast_b64 is not None:
        with open(path, "rb", buffering=0) as f:
            data = f.read()
        return _fast_b64(data)
    return b64_file_chunked(path, size)


def b64_file_chunked(path: Path, size: int) -> str:
    """The binascii fallback: chunks encoded into one preallocated buffer, then one str."""
    out = bytearray(b64_size(size))
    pos = 0
    chunk = min(_CHUNK, max(3, size + 3 - size % 3))
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = 0
            while n < chunk:
                got = f.readinto(view[n:])
                if not got:
                    break
                n += got
            if not n:
                break
            enc = binascii.b2a_base64(view[:n], newline=False)
            out[pos : pos + len(enc)] = enc
            pos += len(enc)
            if n < chunk:
                break
    view.release()
    if pos != len(out):
        del out[pos:]
    text = out.decode("ascii")
    del out
    return text


@dataclass(frozen=True)
class Refused:
    file: OutputFile
    reason: str

    def message(self) -> str:
        f = self.file
        return (
            f"output {f.filename!r} of node {f.node_id} (subfolder {f.subfolder!r}, type "
            f"{f.type!r}) was not delivered: {self.reason}"
        )


def _plain_relative(f: OutputFile) -> bool:
    """A file name without folders and a relative subfolder without `..` (what ComfyUI's own
    savers report)."""
    name, sub = f.filename, f.subfolder.replace("\\", "/")
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name + sub:
        return False
    return not sub.startswith("/") and ".." not in sub.split("/") and ":" not in sub[:2]


def locate(files: list[OutputFile], settings: Settings) -> tuple[list[Located], list[Refused]]:
    """Where each output file is: in the shared output folder (a regular file inside it after
    resolving symlinks), or to be fetched through `/view`. Anything else is refused."""
    out: list[Located] = []
    refused: list[Refused] = []
    root = settings.comfy_output_dir
    base = Path(root).resolve() if root else None
    for f in files:
        if f.type != "output":
            refused.append(Refused(f, "only files of ComfyUI's output folder are delivered"))
        elif not _plain_relative(f):
            refused.append(Refused(f, "its name or subfolder points outside the output folder"))
        elif base is None:
            out.append(Located(f, None, None))
        else:
            try:
                p = (base / f.subfolder / f.filename).resolve(strict=True)
                st = p.stat()
            except (OSError, RuntimeError):  # missing, or a symlink loop
                out.append(Located(f, None, None))  # reported missing when it is fetched
                continue
            if base not in p.parents:
                refused.append(Refused(f, "it resolves outside ComfyUI's output folder"))
            elif not stat.S_ISREG(st.st_mode):
                refused.append(Refused(f, "it is not a regular file"))
            else:
                out.append(Located(f, p, st.st_size))
    return out, refused


def too_large_message(total: int, limit: int) -> str:
    return (
        f"the outputs would make a {total / 1e6:.1f} MB result as base64, over the "
        f"{limit / 1e6:.1f} MB limit (RESULT_MAX_BYTES; RunPod rejects larger results). "
        "Enable S3 delivery: set BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID, "
        "BUCKET_SECRET_ACCESS_KEY and BUCKET_NAME on the endpoint, or make the output smaller"
    )


def _item(loc: Located, type_: str, data: str, size: int) -> dict:
    f = loc.file
    return {
        "filename": f.filename,
        "type": type_,
        "data": data,
        "kind": f.kind,
        "mime": f.mime,
        "size": size,
        "node_id": f.node_id,
        "subfolder": f.subfolder,
    }


def s3_key(prefix: str, job_id: str, f: OutputFile, taken: set[str]) -> str:
    """`<prefix>/<job id>/<subfolder>/<file name>`, once per job: the save node's subfolder
    keeps two nodes' same-named files apart (`a/x_00001_.png`, `b/x_00001_.png`: one key
    without it, the second upload over the first); a name still taken (a temp file named as
    an output) is numbered, `-2`, `-3`... before its extension. Adds the key to `taken`."""
    sub = f.subfolder.replace("\\", "/").strip("/")  # relative, without `..` (checked first)
    key = "/".join(p for p in (prefix, job_id, sub, f.filename) if p)
    stem, dot, ext = key.rpartition(".") if "." in f.filename else (key, "", "")
    n = 1
    while key in taken:
        n += 1
        key = f"{stem}-{n}{dot}{ext}"
    taken.add(key)
    return key


class Delivery:
    """Turns located output files into result items. Build once per worker (S3 client)."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.s3 = make_s3_client(settings.s3) if settings.s3 else None

    async def deliver(self, job_id: str, located: list[Located], client: ComfyClient) -> list[dict]:
        if self.s3 is not None:
            taken: set[str] = set()
            return [await self._to_s3(job_id, loc, client, taken) for loc in located]
        return await self._to_base64(located, client)

    async def _to_base64(self, located: list[Located], client: ComfyClient) -> list[dict]:
        known = sum(b64_size(loc.size) + ITEM_OVERHEAD for loc in located if loc.size is not None)
        if known > self.s.result_max_bytes:
            raise ResultTooLarge(too_large_message(known, self.s.result_max_bytes))
        items: list[dict] = []
        total = 0
        for loc in located:
            if loc.path is not None:
                try:
                    data = b64_file(loc.path, loc.size or 0)
                except OSError as e:
                    raise OutputError(f"{loc.file.filename}: {e.strerror}") from None
                size = loc.size or 0
            else:
                raw = await self._fetch_bytes(loc, client)
                size = len(raw)
                if total + b64_size(size) > self.s.result_max_bytes:
                    raise ResultTooLarge(
                        too_large_message(total + b64_size(size), self.s.result_max_bytes)
                    )
                data = b64_text(raw)
                del raw
            total += len(data) + ITEM_OVERHEAD
            items.append(_item(loc, "base64", data, size))
        return items

    async def deliver_blobs(
        self, job_id: str, blobs: list[tuple[OutputFile, bytes]], used: int
    ) -> list[dict]:
        """Items for outputs that exist only in memory (the images a websocket output node
        sent); `used` is what the base64 result already holds (the size limit is shared)."""
        items: list[dict] = []
        cfg = self.s.s3
        taken: set[str] = set()  # websocket_<node>_<n>_ names: their own, as ComfyUI's are
        for f, data in blobs:
            loc = Located(f, None, len(data), data)
            if self.s3 is not None and cfg is not None:
                key = s3_key(cfg.prefix, job_id, f, taken)
                items.append(await self._s3_item(loc, key, None))
                continue
            used += b64_size(len(data)) + ITEM_OVERHEAD
            if used > self.s.result_max_bytes:
                raise ResultTooLarge(too_large_message(used, self.s.result_max_bytes))
            items.append(_item(loc, "base64", b64_text(data), len(data)))
        return items

    async def _fetch_bytes(self, loc: Located, client: ComfyClient) -> bytes:
        f = loc.file
        try:
            return await client.view_bytes(f.filename, f.subfolder, f.type)
        except Exception as e:
            raise OutputError(f"{f.filename} (node {f.node_id}): {e}") from None

    async def _to_s3(self, job_id: str, loc: Located, client: ComfyClient, taken: set[str]) -> dict:
        cfg = self.s.s3
        assert cfg is not None
        return await self._s3_item(loc, s3_key(cfg.prefix, job_id, loc.file, taken), client)

    async def _s3_item(self, loc: Located, key: str, client: ComfyClient | None) -> dict:
        tmp: str | None = None
        path = loc.path
        if path is None:
            fd, tmp = tempfile.mkstemp(prefix="wanpod-out-", suffix="-" + loc.file.filename)
            with os.fdopen(fd, "wb") as fh:
                try:
                    if client is None:  # an in-memory output: its bytes are in loc.data
                        fh.write(loc.data)
                    else:
                        await client.view_to(
                            loc.file.filename, loc.file.subfolder, loc.file.type, fh
                        )
                except Exception as e:
                    raise OutputError(f"{loc.file.filename}: {e}") from None
            path = Path(tmp)
        try:
            size = path.stat().st_size
            url = await asyncio.to_thread(self._upload, path, key, loc.file.mime)
        finally:
            if tmp:
                os.unlink(tmp)
        return _item(loc, "s3_url", url, size)

    def _upload(self, path: Path, key: str, mime: str) -> str:
        from boto3.s3.transfer import TransferConfig

        cfg = self.s.s3
        assert cfg is not None and self.s3 is not None
        transfer = TransferConfig(
            multipart_threshold=16 << 20, multipart_chunksize=8 << 20, max_concurrency=4
        )
        try:
            self.s3.upload_file(
                str(path), cfg.bucket, key, ExtraArgs={"ContentType": mime}, Config=transfer
            )
            return self.s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": cfg.bucket, "Key": key},
                ExpiresIn=cfg.url_expires_s,
            )
        except Exception as e:
            # botocore messages carry no secrets, but keep it to the type and the S3 error code
            code = (
                getattr(e, "response", {}).get("Error", {}).get("Code", "")
                if hasattr(e, "response")
                else ""
            )
            raise DeliveryError(
                f"S3 upload of {key!r} to bucket {cfg.bucket!r} at {cfg.endpoint_url} failed: "
                f"{type(e).__name__} {code}".rstrip()
            ) from None


def make_s3_client(cfg: S3Settings):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=cfg.endpoint_url,
        aws_access_key_id=cfg.access_key_id.value,
        aws_secret_access_key=cfg.secret_access_key.value,
        region_name=cfg.region,
        config=Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"}),
    )
