"""Worker settings, read once from the environment into a typed, immutable object.

`Settings.from_env(env)` takes any mapping (tests pass a dict; the worker passes `os.environ`),
validates every value and raises `ConfigError` naming the variable, the bad value and what is
allowed. Secrets are wrapped in `Secret`, whose repr/str is masked. worker-comfyui's variable
names are honoured; the rest are ours. Every variable read here is documented in docs/worker.md (a
test checks it).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigError


class Secret:
    """A string that never shows itself in repr/str/f-strings. Use `.value` deliberately."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @property
    def value(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# Where a network volume is mounted: serverless workers (/runpod-volume), pods (/workspace).
VOLUME_ROOTS = ("/runpod-volume", "/workspace")

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})  # also start.sh's is_true
_FALSE = {"0", "false", "no", "off"}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """Unset or blank (an empty row in RunPod's environment editor): the default, as every
    other setting here and start.sh read a blank value."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    v = raw.strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; allowed: true/false, 1/0, yes/no")


def _num(env: Mapping[str, str], name: str, default: float, kind=float, minimum: float = 0):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        v = kind(raw.strip())
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not {'an integer' if kind is int else 'a number'}"
        ) from None
    if v < minimum:
        raise ConfigError(f"{name}={raw!r} is too small; allowed: >= {minimum}")
    return v


def _str(env: Mapping[str, str], name: str, default: str = "") -> str:
    return (env.get(name) or default).strip()


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(env: Mapping[str, str], name: str) -> tuple[IPNetwork, ...]:
    """A comma-separated list of addresses or CIDR networks (`10.1.2.3, 10.8.0.0/16, fd00::/64`)."""
    out: list[IPNetwork] = []
    for part in _str(env, name).split(","):
        if part.strip():
            try:
                out.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ConfigError(
                    f"{name}: {part.strip()!r} is not an IP address or network; allowed: a "
                    "comma-separated list such as 10.1.2.3, 10.8.0.0/16, fd00:1::/64"
                ) from None
    return tuple(out)


def _ca_bundle(env: Mapping[str, str], name: str) -> str:
    path = _str(env, name)
    if path and not os.path.isfile(path):
        raise ConfigError(f"{name}={path!r} is not a file; allowed: a PEM file of CA certificates")
    return path


@dataclass(frozen=True)
class S3Settings:
    """Complete S3 delivery settings (only built when every required part is present)."""

    endpoint_url: str
    access_key_id: Secret
    secret_access_key: Secret
    bucket: str
    prefix: str
    region: str
    url_expires_s: int


@dataclass(frozen=True)
class Settings:
    comfy_host: str = "127.0.0.1:8188"
    ready_interval_s: float = 0.05
    ready_max_retries: int = 0
    ready_timeout_s: float = 600.0
    comfy_pid_file: str = "/tmp/comfyui.pid"
    ws_reconnect_attempts: int = 5
    ws_reconnect_delay_s: float = 3.0
    ws_trace: bool = False
    refresh_worker: bool = False
    comfy_org_api_key: Secret = field(default_factory=lambda: Secret(""))
    s3: S3Settings | None = None
    comfy_input_dir: str = ""
    comfy_output_dir: str = ""
    job_timeout_s: float = 3600.0
    result_max_bytes: int = 20_000_000
    max_images: int = 16
    max_image_bytes: int = 30_000_000
    max_image_pixels: int = 50_000_000
    progress_interval_s: float = 1.0
    progress_quiet_s: float = 0.3
    progress_url: str = ""
    cleanup: bool = True
    log_level: str = "INFO"
    network_volume_debug: bool = False
    comfy_log_level: str = ""
    allow_annotated_inputs: bool = False
    hf_token: Secret = field(default_factory=lambda: Secret(""))  # provision job (gated repos)
    volume_paths: tuple[str, ...] = VOLUME_ROOTS  # WANPOD_VOLUME_PATHS, ':'-separated
    # `images[].image` given as a URL (worker/fetch.py)
    image_url_timeout_s: float = 60.0
    image_url_read_timeout_s: float = 15.0
    image_url_allow_http: bool = False
    image_url_allow_private: bool = False
    image_url_allow_networks: tuple[IPNetwork, ...] = ()
    image_url_ca_bundle: str = ""

    @property
    def comfy_http(self) -> str:
        return f"http://{self.comfy_host}"

    @property
    def comfy_ws(self) -> str:
        return f"ws://{self.comfy_host}"

    @property
    def progress_enabled(self) -> bool:
        return bool(self.progress_url)

    def secrets(self) -> list[str]:
        """Secret values, so error messages can be scrubbed of them."""
        out = [self.comfy_org_api_key.value, self.hf_token.value]
        if self.s3:
            out += [self.s3.access_key_id.value, self.s3.secret_access_key.value]
        return [s for s in out if s]

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        host = _str(env, "COMFY_HOST", "127.0.0.1:8188")
        if "://" in host or "/" in host or not host:
            raise ConfigError(f"COMFY_HOST={host!r} must be host:port, e.g. 127.0.0.1:8188")
        level = _str(env, "WORKER_LOG_LEVEL", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(
                f"WORKER_LOG_LEVEL={level!r} is not a level; allowed: DEBUG, INFO, WARNING, ERROR"
            )
        return cls(
            comfy_host=host,
            ready_interval_s=_num(env, "COMFY_API_AVAILABLE_INTERVAL_MS", 50, int, 1) / 1000,
            ready_max_retries=_num(env, "COMFY_API_AVAILABLE_MAX_RETRIES", 0, int, 0),
            ready_timeout_s=_num(env, "COMFY_READY_TIMEOUT_S", 600.0),
            # set empty: start.sh writes no pid file, and there is nothing to check
            comfy_pid_file=env.get("COMFY_PID_FILE", "/tmp/comfyui.pid").strip(),
            ws_reconnect_attempts=_num(env, "WEBSOCKET_RECONNECT_ATTEMPTS", 5, int, 0),
            ws_reconnect_delay_s=_num(env, "WEBSOCKET_RECONNECT_DELAY_S", 3.0),
            ws_trace=_bool(env, "WEBSOCKET_TRACE", False),
            refresh_worker=_bool(env, "REFRESH_WORKER", False),
            comfy_org_api_key=Secret(_str(env, "COMFY_ORG_API_KEY")),
            s3=_s3_from_env(env),
            comfy_input_dir=_str(env, "COMFY_INPUT_DIR"),
            comfy_output_dir=_str(env, "COMFY_OUTPUT_DIR"),
            job_timeout_s=_num(env, "JOB_TIMEOUT_S", 3600.0),
            result_max_bytes=_num(env, "RESULT_MAX_BYTES", 20_000_000, int, 1),
            max_images=_num(env, "MAX_IMAGES", 16, int, 0),
            max_image_bytes=_num(env, "MAX_IMAGE_BYTES", 30_000_000, int, 1),
            max_image_pixels=_num(env, "MAX_IMAGE_PIXELS", 50_000_000, int, 1),
            progress_interval_s=_num(env, "PROGRESS_INTERVAL_S", 1.0),
            progress_quiet_s=_num(env, "PROGRESS_QUIET_S", 0.3),
            progress_url=_str(env, "RUNPOD_WEBHOOK_POST_OUTPUT"),
            cleanup=_bool(env, "CLEANUP_JOB_FILES", True),
            log_level=level,
            network_volume_debug=_bool(env, "NETWORK_VOLUME_DEBUG", False),
            comfy_log_level=_str(env, "COMFY_LOG_LEVEL"),
            allow_annotated_inputs=_bool(env, "ALLOW_ANNOTATED_INPUTS", False),
            hf_token=Secret(_str(env, "HF_TOKEN")),
            volume_paths=tuple(p for p in _str(env, "WANPOD_VOLUME_PATHS").split(":") if p)
            or VOLUME_ROOTS,
            image_url_timeout_s=_num(env, "IMAGE_URL_TIMEOUT_S", 60.0, float, 0.1),
            image_url_read_timeout_s=_num(env, "IMAGE_URL_READ_TIMEOUT_S", 15.0, float, 0.1),
            image_url_allow_http=_bool(env, "IMAGE_URL_ALLOW_HTTP", False),
            image_url_allow_private=_bool(env, "IMAGE_URL_ALLOW_PRIVATE", False),
            image_url_allow_networks=_networks(env, "IMAGE_URL_ALLOW_NETWORKS"),
            image_url_ca_bundle=_ca_bundle(env, "IMAGE_URL_CA_BUNDLE"),
        )


_S3_REQUIRED = ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY")


# S3 host names that carry a region (AWS's, and stores named like them, such as Wasabi's):
# s3.<region>, s3-<region> (AWS's older dash form), s3.dualstack.<region>, s3-fips.<region>,
# each possibly after "<bucket>."; AWS's global s3.amazonaws.com is us-east-1
_S3_HOST_REGION = re.compile(
    r"(?:^|\.)s3(?:-fips)?(?:[.-]dualstack)?[.-](?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\."
)


def _aws_region(host: str) -> str:
    """The region an S3 endpoint's host names (SigV4 signs with it); us-east-1 for the global
    endpoint and for hosts that name none (S3-compatible stores, which accept it)."""
    match = _S3_HOST_REGION.search(host.lower())
    return match["region"] if match else "us-east-1"


def _s3_from_env(env: Mapping[str, str]) -> S3Settings | None:
    present = [n for n in _S3_REQUIRED if _str(env, n)]
    if not present:
        return None
    missing = [n for n in _S3_REQUIRED if n not in present]
    if missing:
        raise ConfigError(
            f"S3 delivery is half configured: {', '.join(present)} set but {', '.join(missing)} "
            "missing; set all three (and BUCKET_NAME) or none (results are then base64)"
        )
    endpoint = _str(env, "BUCKET_ENDPOINT_URL")
    parsed = urllib.parse.urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"BUCKET_ENDPOINT_URL={endpoint!r} must be an http(s) URL")
    bucket = _str(env, "BUCKET_NAME")
    if not bucket:
        # worker-comfyui style: https://<bucket>.s3.<region>.amazonaws.com
        host = parsed.hostname or ""
        if ".s3." in host or ".s3-" in host:
            bucket = host.split(".", 1)[0]
            endpoint = f"{parsed.scheme}://{host.split('.', 1)[1]}"
        else:
            raise ConfigError(
                "BUCKET_NAME is not set and BUCKET_ENDPOINT_URL does not name a bucket "
                "(https://<bucket>.s3.<region>.amazonaws.com); set BUCKET_NAME"
            )
    region = _str(env, "BUCKET_REGION") or _aws_region(parsed.hostname or "")
    return S3Settings(
        endpoint_url=endpoint,
        access_key_id=Secret(_str(env, "BUCKET_ACCESS_KEY_ID")),
        secret_access_key=Secret(_str(env, "BUCKET_SECRET_ACCESS_KEY")),
        bucket=bucket,
        prefix=_str(env, "BUCKET_PREFIX").strip("/"),
        region=region,
        url_expires_s=_num(env, "BUCKET_URL_EXPIRES_S", 604800, int, 1),
    )
