"""Settings of a studio that shares its state with other replicas, read once from the environment.

- `WANPOD_DATABASE_URL`: the ledger (app/studio/db.py); blank: `data/ledger.sqlite3` (one studio),
  `postgresql://user:password@host:port/db` for a ledger several replicas share. Its password is
  a secret (scrubbed from every message).
- `WANPOD_LEASE_S`: how long a replica's hold on a live job lasts without renewal (app/studio/
  tracker.py); a replica that dies loses its jobs to another within this time. Default 30.
- `WANPOD_RESULTS_URL`: where finished videos go (app/studio/store.py); blank: the local data
  folder, `s3://bucket/prefix` for any S3-compatible store, reached at `WANPOD_S3_ENDPOINT_URL`
  (blank: AWS) in `WANPOD_S3_REGION` with `WANPOD_S3_ACCESS_KEY_ID` / `WANPOD_S3_SECRET_ACCESS_KEY`
  (both secrets; blank: boto3's own credential chain).
- `WANPOD_PUBLIC_URL`: the studio's address as RunPod reaches it; when set, every /run carries a
  webhook to it with a per-job secret (app/studio/webhooks.py); polling stays the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.environment import Secret, env_float
from app.errors import ConfigError
from app.studio.db import database_url, url_secrets


@dataclass(frozen=True)
class SharedSettings:
    database_url: Secret = field(default_factory=lambda: Secret(""))  # "" : the data folder's
    lease_s: float = 30.0
    results_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key_id: Secret = field(default_factory=lambda: Secret(""))
    s3_secret_access_key: Secret = field(default_factory=lambda: Secret(""))
    public_url: str = ""

    def ledger_url(self, data_dir: Path) -> str:
        return database_url(self.database_url.value, data_dir)

    def secret_values(self) -> tuple[str, ...]:
        keys = (self.s3_access_key_id.value, self.s3_secret_access_key.value)
        return tuple(k for k in keys if k) + url_secrets(self.database_url.value)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SharedSettings:
        db = env.get("WANPOD_DATABASE_URL", "").strip()
        database_url(db, Path("data"))  # refuses a malformed URL now, naming the variable
        results = env.get("WANPOD_RESULTS_URL", "").strip()
        if results and not (results.startswith("s3://") and len(results) > len("s3://")):
            raise ConfigError(
                f"WANPOD_RESULTS_URL={results!r} is not a results location; allowed: blank "
                "(the data folder) or s3://bucket/prefix"
            )
        endpoint = env.get("WANPOD_S3_ENDPOINT_URL", "").strip()
        public = env.get("WANPOD_PUBLIC_URL", "").strip().rstrip("/")
        for name, url in (("WANPOD_S3_ENDPOINT_URL", endpoint), ("WANPOD_PUBLIC_URL", public)):
            if url and not url.startswith(("http://", "https://")):
                raise ConfigError(f"{name}={url!r} is not an http(s) URL")
        return cls(
            database_url=Secret(db),
            lease_s=env_float(env, "WANPOD_LEASE_S", 30.0, 2.0, 3600.0, "seconds"),
            results_url=results,
            s3_endpoint_url=endpoint,
            s3_region=env.get("WANPOD_S3_REGION", "").strip(),
            s3_access_key_id=Secret(env.get("WANPOD_S3_ACCESS_KEY_ID", "").strip()),
            s3_secret_access_key=Secret(env.get("WANPOD_S3_SECRET_ACCESS_KEY", "").strip()),
            public_url=public,
        )
