"""Where finished jobs' files live: the local data folder (the default) or S3-compatible storage.

The tracker saves a job's outputs into `store.folder(rid)` (app/studio/results.py), then
`store.keep(rid, saved)` gives each file its lasting location, the string the ledger keeps:
- `LocalStore`: the file where it is (data/results/<rid>/<name>);
- `S3Store` (`WANPOD_RESULTS_URL=s3://bucket/prefix`, app/studio/shared.py): uploaded to
  `prefix/<rid>/<name>`, kept as `s3://bucket/prefix/<rid>/<name>`, so every replica finds it.
Pages and the API never see a bucket, a key or a credential: `store.local(location)` is the file
the studio serves, through the same lookups (and access checks) as the job itself; for S3 it is
downloaded once into the replica's results folder (a cache Gradio serves from) and reused.
`presign(location, expires_s)` is a short-lived GET URL for a client that fetches from the store.
`put(rid, path, mime)` keeps a file the studio made beside a job's outputs: the tracker puts the
video's thumbnail there (`<video>.thumb.jpg`, app/studio/history.py), so another replica's history
gallery fetches a small JPEG, not the whole video (a job stored before falls back to its video).
`keep_input(rid, path)` / `fetch_input(rid, name, out)`: a job's input image (or a storyboard's
start image) as its replica keeps it for reruns, reuse and draft → final; S3 puts it under
`prefix/<rid>/inputs/<name>` so another replica fetches it once into its own folder (`out`).
The local store keeps nothing more: the replica's own copy is the only one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from app.studio.files import replacing
from app.studio.results import SavedOutput, safe_name

log = logging.getLogger("wanpod.store")

PRESIGN_S = 300  # a presigned URL's life: enough to start a download, too short to share
INPUTS = "inputs"  # a job's kept input images' folder under its key prefix


class ResultStore(Protocol):
    def folder(self, rid: str) -> Path: ...
    def keep(self, rid: str, saved: Sequence[SavedOutput]) -> list[dict[str, Any]]: ...
    def put(self, rid: str, path: Path, mime: str) -> str: ...
    def local(self, location: str | None) -> Path | None: ...
    def keep_input(self, rid: str, path: Path) -> None: ...
    def fetch_input(self, rid: str, name: str, out: Path) -> Path | None: ...


class LocalStore:
    def __init__(self, results_dir: Path) -> None:
        self.results_dir = Path(results_dir)

    def folder(self, rid: str) -> Path:
        return self.results_dir / rid

    def keep(self, rid: str, saved: Sequence[SavedOutput]) -> list[dict[str, Any]]:
        return [s.to_json() for s in saved]

    def put(self, rid: str, path: Path, mime: str) -> str:
        """A file made beside a job's outputs (its thumbnail): kept where it is."""
        return str(path)

    def local(self, location: str | None) -> Path | None:
        path = Path(location) if location else None
        return path if path is not None and path.is_file() else None

    def keep_input(self, rid: str, path: Path) -> None:
        """The replica's own copy is the kept one."""

    def fetch_input(self, rid: str, name: str, out: Path) -> Path | None:
        """Only the replica's own copy was kept: none to fetch."""
        return None


class S3Store:
    """`s3://bucket/prefix` through `client` (a boto3 S3 client); `cache_dir` is the results
    folder the studio serves files from."""

    def __init__(self, url: str, client: Any, cache_dir: Path) -> None:
        parts = urlsplit(url)
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.client = client
        self.cache_dir = Path(cache_dir)

    def _key(self, rid: str, *names: str) -> str:
        return "/".join(p for p in (self.prefix, safe_name(rid), *map(safe_name, names)) if p)

    def folder(self, rid: str) -> Path:
        return self.cache_dir / safe_name(rid)

    def keep(self, rid: str, saved: Sequence[SavedOutput]) -> list[dict[str, Any]]:
        kept = []
        for s in saved:
            key = self._key(rid, s.filename)
            extra = {"ContentType": s.mime} if s.mime else {}
            self.client.upload_file(str(s.path), self.bucket, key, ExtraArgs=extra)
            kept.append({**s.to_json(), "path": f"s3://{self.bucket}/{key}"})
        return kept

    def put(self, rid: str, path: Path, mime: str) -> str:
        """A file made beside a job's outputs (its thumbnail), uploaded next to them."""
        key = self._key(rid, path.name)
        self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": mime})
        return f"s3://{self.bucket}/{key}"

    def local(self, location: str | None) -> Path | None:
        if not in_object_storage(location):
            return LocalStore(self.cache_dir).local(location)
        bucket, _, key = location.removeprefix("s3://").partition("/")
        rid, _, name = key.removeprefix(self.prefix).strip("/").partition("/")
        return self._fetch(bucket, key, self.folder(rid) / safe_name(name))

    def keep_input(self, rid: str, path: Path) -> None:
        """Uploaded beside the job's outputs, under `inputs/` (never served from the store)."""
        self.client.upload_file(str(path), self.bucket, self._key(rid, INPUTS, path.name))

    def fetch_input(self, rid: str, name: str, out: Path) -> Path | None:
        return self._fetch(self.bucket, self._key(rid, INPUTS, name), out)

    def _fetch(self, bucket: str, key: str, path: Path) -> Path | None:
        """`key` downloaded once to `path` (reused while there); None when it cannot be had."""
        if path.is_file():
            return path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with replacing(path) as tmp:
                self.client.download_file(bucket, key, str(tmp))
            return path
        except Exception as exc:  # the store away or the object gone: the caller says so
            code = error_code(exc)
            level = logging.DEBUG if code in ("404", "NoSuchKey") else logging.WARNING
            log.log(level, "store: %s could not be fetched (%s %s)", key, type(exc).__name__, code)
            return None

    def presign(self, location: str, expires_s: int = PRESIGN_S) -> str:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s
        )


# S3 error codes that trying again later may cure (AWS's and S3-compatible stores' names)
RETRIABLE_CODES = frozenset({
    "SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "RequestLimitExceeded",
    "ServiceUnavailable", "InternalError", "RequestTimeTooSkewed",
})  # fmt: skip


def error_code(exc: BaseException) -> str:
    """The store's error code an S3 error carries ("NoSuchKey", "SlowDown", "404"; "" for none):
    what a log line may say of it (never the store's message, which names bucket and key)."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def unavailable(exc: BaseException) -> bool:
    """The object store could not be used for a moment: out of reach, timing out, answering
    5xx or asking to slow down. What trying again later may cure, unlike refused keys or a
    missing bucket. boto3's upload_file wraps the store's answer in S3UploadFailedError: the
    error it was raised from is looked at too."""
    try:
        from botocore.exceptions import ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as Unreachable
    except ImportError:  # only an S3 result store needs the SDK
        return False
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, HTTPClientError | Unreachable):  # refused, closed, timed out, TLS
            return True
        if isinstance(exc, ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return error_code(exc) in RETRIABLE_CODES or int(status) >= 500
        exc = exc.__cause__ or exc.__context__
    return False


def in_object_storage(location: str | None) -> bool:
    """Whether a stored result's location is an object's (`s3://...`), not a local path."""
    return bool(location) and str(location).startswith("s3://")


def open_store(shared: Any, results_dir: Path) -> ResultStore:
    """The store `shared` (SharedSettings) names: S3 for an s3:// URL, else the data folder."""
    if not shared.results_url:
        return LocalStore(results_dir)
    import boto3  # only an S3 result store needs the SDK

    client = boto3.client(
        "s3",
        endpoint_url=shared.s3_endpoint_url or None,
        region_name=shared.s3_region or None,
        aws_access_key_id=shared.s3_access_key_id.value or None,
        aws_secret_access_key=shared.s3_secret_access_key.value or None,
    )
    return S3Store(shared.results_url, client, results_dir)
