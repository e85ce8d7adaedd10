"""Studio settings, read once from the environment into a typed, immutable object.

`Settings.from_env(env)` takes any mapping (tests pass a dict, `python -m app` passes os.environ).
With RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID set the studio talks to RunPod; with neither it runs
the local demo stack; one without the other is a ConfigError. Secrets are `Secret` objects whose
repr/str is masked, so logging the settings never leaks them.

Variables: RUNPOD_API_KEY, RUNPOD_ENDPOINT_ID, RUNPOD_API_BASE (default https://api.runpod.ai/v2),
WANPOD_DATA_DIR (default ./data), WANPOD_GPU_TYPE (a key of app/studio/prices.yaml, default
"H100 PRO"), WANPOD_PRICES (path of the prices YAML), GRADIO_SERVER_NAME (default 127.0.0.1),
GRADIO_SERVER_PORT (default 7860), WANPOD_CONCURRENCY (Gradio concurrency per event, default 64),
WANPOD_POLL_S (tracker's fastest poll interval, default 1.0), WANPOD_DEMO_WORKERS (local worker
processes in demo mode, default 2), WANPOD_DEMO_STEP_DELAY (emulated seconds per sampler step,
default 0.5), WANPOD_BATCH_MAX (most jobs in one batch, default 16), WANPOD_CHAIN_MAX_S (longest
video an Extend or Storyboard chain may make, in seconds, default 60), WANPOD_MAX_UPLOAD_MB
(Gradio's max_file_size, default 20), WANPOD_SESSIONS (Gradio's state_session_capacity, default
500), WANPOD_GRADIO_CACHE_S (how long Gradio keeps its copies of uploads, default 86400);
S3 secrets for the worker
are never read here (BUCKET_ACCESS_KEY_ID / ..._SECRET are the worker's), but their values are
scrubbed from messages when present.
Operator settings are sub-objects read in the same pass: `guardrails`
(app/studio/checks/guardrails.py: WANPOD_GUARDRAILS, WANPOD_BUDGET_*, WANPOD_MAX_*,
WANPOD_TIMEOUT_*), `access` (app/access.py: APP_AUTH, APP_ADMINS, APP_ALLOW_PUBLIC_WITHOUT_AUTH,
GRADIO_SHARE, GRADIO_ROOT_PATH; the APP_AUTH passwords count as secrets), `preflight`
(app/studio/checks/preflight.py: WANPOD_PREFLIGHT, WANPOD_INVENTORY_*), `fetch`
(app/studio/fetch.py: WANPOD_S3_ENDPOINT_URL, WANPOD_RESULT_MAX_MB, WANPOD_RESULT_TIMEOUT_S) and
`shared` (app/studio/shared.py: WANPOD_DATABASE_URL, WANPOD_LEASE_S, WANPOD_RESULTS_URL,
WANPOD_S3_*, WANPOD_PUBLIC_URL; the database password and the S3 keys count as secrets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.access import Access
from app.environment import Secret, env_float, env_int
from app.errors import ConfigError
from app.studio.checks.guardrails import Guardrails
from app.studio.checks.preflight import PreflightSettings
from app.studio.cost import PRICES_PATH, load_prices
from app.studio.db import userinfo_secrets
from app.studio.fetch import FetchSettings
from app.studio.shared import SharedSettings

DEFAULT_API_BASE = "https://api.runpod.ai/v2"


def runpod_credentials(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(RUNPOD_API_KEY, RUNPOD_ENDPOINT_ID) when both are set, None when neither is (the local
    demo), ConfigError naming the missing one when only one is: the rule for the studio and the
    CLI alike, so a half-configured environment never falls back to the demo silently."""
    key = env.get("RUNPOD_API_KEY", "").strip()
    endpoint = env.get("RUNPOD_ENDPOINT_ID", "").strip()
    if bool(key) != bool(endpoint):
        missing = "RUNPOD_ENDPOINT_ID" if key else "RUNPOD_API_KEY"
        raise ConfigError(
            f"{missing} is not set; set both RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID to use "
            "RunPod, or neither for the local demo"
        )
    return (key, endpoint) if key else None


@dataclass(frozen=True)
class Settings:
    api_key: Secret = field(default_factory=lambda: Secret(""))
    endpoint_id: str = ""
    api_base: str = DEFAULT_API_BASE
    data_dir: Path = Path("data")
    gpu_type: str = "H100 PRO"
    prices_path: Path = PRICES_PATH
    host: str = "127.0.0.1"
    port: int = 7860
    concurrency: int = 64
    poll_s: float = 1.0
    demo_workers: int = 2
    demo_step_delay: float = 0.5
    batch_max: int = 16
    max_upload_mb: int = 20  # Gradio's max_file_size: images and workflow JSON, /run takes 10 MB
    sessions: int = 500  # Gradio's state_session_capacity: ~0.25 MB each (bench/session_memory.py)
    gradio_cache_s: int = 86400  # Gradio's copies of uploads (app/ui/serving.py's cache_cleanup)
    chain_max_s: float = 60.0
    extra_secrets: tuple[Secret, ...] = ()
    guardrails: Guardrails = field(default_factory=Guardrails)
    access: Access = field(default_factory=Access)
    preflight: PreflightSettings = field(default_factory=PreflightSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)  # result downloads
    shared: SharedSettings = field(default_factory=SharedSettings)

    @property
    def demo(self) -> bool:
        """True when no RunPod credentials are configured: the local stack stands in."""
        return not self.api_key

    @property
    def base_url(self) -> str:
        return f"{self.api_base.rstrip('/')}/{self.endpoint_id}"

    def secret_values(self) -> tuple[str, ...]:
        """Every secret's raw value, for scrubbing messages (never for display)."""
        own = tuple(s.value for s in (self.api_key, *self.extra_secrets) if s)
        return own + self.access.secret_values() + self.shared.secret_values()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        key, endpoint = runpod_credentials(env) or ("", "")
        if endpoint and not endpoint.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"RUNPOD_ENDPOINT_ID={endpoint!r} is not an endpoint id; allowed: letters, digits,"
                " - and _"
            )
        base = env.get("RUNPOD_API_BASE", DEFAULT_API_BASE).strip() or DEFAULT_API_BASE
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"RUNPOD_API_BASE={base!r} is not an http(s) URL")
        prices = Path(env.get("WANPOD_PRICES", "") or PRICES_PATH)
        if not prices.is_file():
            raise ConfigError(f"WANPOD_PRICES={str(prices)!r} is not a file")
        gpu_type = env.get("WANPOD_GPU_TYPE", "") or "H100 PRO"
        load_prices(prices).price(gpu_type)  # refuses an unknown GPU type now, not at each quote
        extra = tuple(
            Secret(env[n])
            for n in ("BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")
            if env.get(n)
        ) + tuple(Secret(p) for p in userinfo_secrets(base))  # a proxy's password in the URL
        return cls(
            api_key=Secret(key),
            endpoint_id=endpoint,
            api_base=base,
            data_dir=Path(env.get("WANPOD_DATA_DIR", "") or "data"),
            gpu_type=gpu_type,
            prices_path=prices,
            host=env.get("GRADIO_SERVER_NAME", "") or "127.0.0.1",
            port=env_int(env, "GRADIO_SERVER_PORT", 7860, 1, 65535),
            concurrency=env_int(env, "WANPOD_CONCURRENCY", 64, 1, 1024),
            poll_s=env_float(env, "WANPOD_POLL_S", 1.0, 0.05, 60.0),
            demo_workers=env_int(env, "WANPOD_DEMO_WORKERS", 2, 1, 64),
            demo_step_delay=env_float(env, "WANPOD_DEMO_STEP_DELAY", 0.5, 0.0, 30.0),
            batch_max=env_int(env, "WANPOD_BATCH_MAX", 16, 1, 256),
            max_upload_mb=env_int(env, "WANPOD_MAX_UPLOAD_MB", 20, 1, 1024),
            sessions=env_int(env, "WANPOD_SESSIONS", 500, 10, 100_000),
            gradio_cache_s=env_int(env, "WANPOD_GRADIO_CACHE_S", 86400, 1, 30 * 86400),
            chain_max_s=env_float(env, "WANPOD_CHAIN_MAX_S", 60.0, 1.0, 3600.0, "seconds"),
            extra_secrets=extra,
            guardrails=Guardrails.from_env(env),
            access=Access.from_env(env),
            preflight=PreflightSettings.from_env(env),
            fetch=FetchSettings.from_env(env),
            shared=SharedSettings.from_env(env),
        )
