"""The RunPod endpoint client the studio and the CLI use (plain HTTP, no runpod SDK).

`EndpointClient(base_url, api_key)`: base_url is the endpoint's root, RunPod's
`https://api.runpod.ai/v2/<endpoint_id>` or the local control plane's `http://HOST:PORT/v2/<id>`.
- reads (`status`, `stream`, `health`, `cancel`, `purge_queue`) retry on 429, 5xx and connection
  errors with exponential backoff and full jitter (Retry-After honoured);
- `run`/`runsync`/`retry` never create a duplicate: they are retried only when the request
  provably never reached the server (connection refused / connect timeout) or was refused
  with 429 (ridden out for RATE_WAIT_S: RunPod counts its limits over 10 s windows, and a job
  refused for a second would otherwise be lost); any other failure, an answer without a job id
  included, raises `ServerError` saying the job may exist; /runsync's answer is waited for as
  long as the wait it asked for;
- payloads over RunPod's limits (10 MB /run, 20 MB /runsync) are refused before sending;
- errors are the `app.errors.EndpointError` tree; the key never appears in a message or repr.

Transport: one urllib3 pool of keep-alive connections (POOL_SIZE per host), not requests: the
tracker asks /status of every live job about once a second, and each requests call cost about
twice urllib3's own (its session merges settings, cookies and hooks at every call; ~0.5 ms of
the studio's CPU a call, 16 % of it at 64 users). The environment's proxy and CA settings
(HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) are read once, as requests reads
them; without a CA bundle set, certifi's, as requests uses.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from app import errors
from app.endpoint.states import ENDED_ON_RUNPOD, JobState
from app.errors import EndpointError, JobNotFound

RUNPOD_API_BASE = "https://api.runpod.ai/v2"
# RunPod's request-size limits ("10 MB" /run, "20 MB" /runsync) as decimal bytes, so nothing
# passes this pre-check that RunPod may refuse. The local control plane enforces these constants.
RUN_LIMIT = 10_000_000
RUNSYNC_LIMIT = 20_000_000
# policy.executionTimeout: RunPod takes more than 5 s (5000 and below answer 400), at most 7 days.
EXECUTION_TIMEOUT_ABOVE_MS = 5_000
# how long a job submission (/run, /runsync) rides out 429s: RunPod counts its per-endpoint
# limits over 10 s windows, so this spans a few of them (reads back off as any error, briefly:
# the tracker asks again later itself)
RATE_WAIT_S = 30.0
EXECUTION_TIMEOUT_MAX_MS = 7 * 24 * 3600 * 1000
FINAL_STATES = ENDED_ON_RUNPOD
# /health `workers`: the counts RunPod documents, plus `unhealthy` (a worker whose fitness check
# failed). The local control plane answers exactly these; the studio's panel reads each.
WORKER_STATES = ("idle", "initializing", "ready", "running", "throttled", "unhealthy")
JOB_COUNTS = ("inQueue", "inProgress", "completed", "failed", "retried")  # /health `jobs`
HEALTH_QUICK_S = 5.0  # a health panel's one try: connect and answer each within this


@dataclass(frozen=True)
class JobRef:
    id: str
    state: JobState

    @property
    def status(self) -> str:
        return self.state


@dataclass(frozen=True)
class JobStatus:
    """One /status answer. `progress` is the worker's latest progress while IN_PROGRESS;
    `output` only once final. Times in ms (None until RunPod reports them)."""

    id: str
    state: JobState
    progress: Any = None
    output: Any = None
    error: str | None = None
    delay_ms: int | None = None
    execution_ms: int | None = None
    worker_id: str | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def ok(self) -> bool:
        return self.state is JobState.COMPLETED

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobStatus:
        state = JobState.parse(body.get("status"))
        out = body.get("output")
        err = body.get("error")
        if err is not None and not isinstance(err, str):
            err = json.dumps(err)
        if err is None and state is JobState.FAILED and isinstance(out, dict):
            inner = out.get("error")
            err = inner if isinstance(inner, str) else None
        running = state.running
        return cls(
            id=str(body.get("id", "")),
            state=state,
            progress=out if running else None,
            output=None if running else out,
            error=err,
            delay_ms=_int(body.get("delayTime")),
            execution_ms=_int(body.get("executionTime")),
            worker_id=body.get("workerId"),
            raw=dict(body),
        )


@dataclass(frozen=True)
class Health:
    """One /health answer, its counts parsed once (`from_body`): `jobs` by RunPod's names
    (inQueue, inProgress, completed, failed, retried), `workers` by WORKER_STATES."""

    jobs: dict[str, int]
    workers: dict[str, int]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Health:
        jobs, workers = body.get("jobs") or {}, body.get("workers") or {}
        return cls(
            {name: _count(jobs.get(name)) for name in JOB_COUNTS},
            {state: _count(workers.get(state)) for state in WORKER_STATES},
        )

    def worker_count(self, state: str) -> int:
        """Workers RunPod reports in `state` (one of WORKER_STATES); 0 when absent or not a
        number."""
        return _count(self.workers.get(state))

    def job_count(self, name: str) -> int:
        """Jobs RunPod reports under `name` (one of JOB_COUNTS)."""
        return _count(self.jobs.get(name))

    @property
    def idle(self) -> int:
        return self.worker_count("idle")

    @property
    def running(self) -> int:
        return self.worker_count("running")

    @property
    def in_queue(self) -> int:
        return self.job_count("inQueue")


def _count(value: object) -> int:
    """A count as RunPod reports it: a number >= 0; anything else (absent, text, bool) is 0."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return max(int(value), 0) if ok else 0


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _never_sent(exc: Exception) -> bool:
    """True when the request cannot have reached the server (no connection was made: refused,
    unresolvable, or the connect timed out; to the endpoint or to the proxy in between)."""
    if isinstance(exc, urllib3.exceptions.ProxyError):
        exc = exc.original_error
    return isinstance(exc, urllib3.exceptions.ConnectTimeoutError)  # NewConnectionError too


_FAILURES = (  # what a transport error means, for messages (most specific first: urllib3's
    # NewConnectionError is a ConnectTimeoutError, its NameResolutionError a NewConnectionError)
    (urllib3.exceptions.NameResolutionError, "the host name does not resolve"),
    (urllib3.exceptions.NewConnectionError, "the connection was refused"),
    (urllib3.exceptions.ConnectTimeoutError, "connecting timed out"),
    (urllib3.exceptions.ReadTimeoutError, "no answer in time"),
    (urllib3.exceptions.SSLError, "the TLS handshake failed"),
    (urllib3.exceptions.ProxyError, "the proxy failed"),
    (urllib3.exceptions.ProtocolError, "the connection broke before the answer"),
)


def _failure(exc: Exception) -> str:
    """A transport error in words, its class named for a diagnosis."""
    words = next((w for kind, w in _FAILURES if isinstance(exc, kind)), "the request failed")
    return f"{words} ({type(exc).__name__})"


POOL_SIZE = 64  # keep-alive connections kept per host: the tracker's polls and submits at once
# redirects followed as requests follows them; every other failure is the caller's to retry
_RETRIES = urllib3.Retry(total=None, connect=0, read=0, other=0, status=0, redirect=5)


def _pool(base_url: str) -> urllib3.PoolManager:
    """Connections for `base_url`, through the environment's proxy for it if any."""
    env = requests.Session().merge_environment_settings(base_url, {}, None, None, None)
    verify = env.get("verify", True)
    ca = verify if isinstance(verify, str) else requests.certs.where()
    kw: dict[str, Any] = {"maxsize": POOL_SIZE, "retries": _RETRIES}
    if urlsplit(base_url).scheme == "https":
        kw.update(cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE", ca_certs=ca)
    proxies = env.get("proxies") or {}
    proxy = proxies.get(urlsplit(base_url).scheme) or proxies.get("all")
    return urllib3.ProxyManager(proxy, **kw) if proxy else urllib3.PoolManager(**kw)


@dataclass(frozen=True)
class _Response:
    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class EndpointClient:
    """See the module docstring. Thread-safe (urllib3's pool is)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        rate_wait_s: float = RATE_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.rate_wait_s = rate_wait_s
        self._pool = _pool(self.base_url)
        self._timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        self._sleep = sleep

    @classmethod
    def from_env(cls, env: Mapping[str, str], **kw: Any) -> EndpointClient:
        """RUNPOD_API_KEY, RUNPOD_ENDPOINT_ID and optional RUNPOD_API_BASE."""
        key = env.get("RUNPOD_API_KEY", "").strip()
        ep = env.get("RUNPOD_ENDPOINT_ID", "").strip()
        if not key or not ep:
            raise EndpointError(
                "set RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID to use a RunPod endpoint"
            )
        base = (env.get("RUNPOD_API_BASE") or RUNPOD_API_BASE).rstrip("/")
        return cls(f"{base}/{ep}", key, **kw)

    def __repr__(self) -> str:
        return f"EndpointClient(base_url={self.base_url!r}, api_key='***')"

    # -- operations --------------------------------------------------------------------------
    def run(
        self,
        input: Any,
        policy: Mapping[str, Any] | None = None,
        webhook: str | None = None,
        s3_config: Mapping[str, str] | None = None,
    ) -> JobRef:
        body = self._job_body(input, policy, webhook, s3_config, "run", RUN_LIMIT)
        data = self._call("POST", "run", body, idempotent=False)
        if not data.get("id"):  # it reached RunPod, and says nothing of the job it made
            raise errors.run_unknown(200, "an answer without a job id")
        return JobRef(str(data["id"]), JobState.parse(data.get("status", "IN_QUEUE")))

    def runsync(
        self, input: Any, wait_ms: int = 90_000, policy: Mapping[str, Any] | None = None
    ) -> JobStatus:
        body = self._job_body(input, policy, None, None, "runsync", RUNSYNC_LIMIT)
        path = f"runsync?wait={int(wait_ms)}"
        data = self._call("POST", path, body, idempotent=False, read_s=wait_ms / 1000)
        return JobStatus.from_body(data)

    def status(self, job_id: str) -> JobStatus:
        return JobStatus.from_body(self._call("GET", f"status/{job_id}", job_id=job_id))

    def stream(self, job_id: str) -> tuple[JobState, list[Any]]:
        data = self._call("GET", f"stream/{job_id}", job_id=job_id)
        chunks = data.get("stream", []) if isinstance(data, dict) else data
        state = JobState.parse(data.get("status") if isinstance(data, dict) else None)
        return state, [c.get("output") if isinstance(c, dict) else c for c in chunks or []]

    def cancel(self, job_id: str) -> JobRef:
        data = self._call("POST", f"cancel/{job_id}", job_id=job_id)
        return JobRef(str(data.get("id", job_id)), JobState.parse(data.get("status")))

    def retry(self, job_id: str) -> JobRef:
        data = self._call("POST", f"retry/{job_id}", job_id=job_id, idempotent=False)
        return JobRef(str(data.get("id", job_id)), JobState.parse(data.get("status")))

    def purge_queue(self) -> int:
        return int(self._call("POST", "purge-queue").get("removed", 0))

    def health(self, quick: bool = False) -> Health:
        """`quick`: one try within HEALTH_QUICK_S (a panel refreshed every few seconds says
        the endpoint does not answer then, rather than after the reads' retries, ~2.5 min)."""
        data = self._call("GET", "health", within_s=HEALTH_QUICK_S if quick else None)
        return Health.from_body(data)

    def wait(
        self,
        job_id: str,
        on_update: Callable[[JobStatus], None] | None = None,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> JobStatus:
        """Poll /status every `poll_s` until a final state (or `timeout_s`, then the last one)."""
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            st = self.status(job_id)
            if on_update:
                on_update(st)
            if st.final or (end is not None and time.monotonic() >= end):
                return st
            self._sleep(poll_s)

    # -- transport ---------------------------------------------------------------------------
    def _job_body(self, input, policy, webhook, s3_config, op: str, limit: int) -> bytes:
        body: dict[str, Any] = {"input": input}
        if policy:
            body["policy"] = dict(policy)
        if webhook:
            body["webhook"] = webhook
        if s3_config:
            body["s3Config"] = dict(s3_config)
        raw = json.dumps(body, separators=(",", ":")).encode()
        if len(raw) > limit:
            raise errors.payload_too_large(len(raw), limit, op, None)
        return raw

    def _delay(self, attempt: int, resp: _Response | None, most: float | None = None) -> float:
        """The wait before try `attempt` + 1: the answer's Retry-After (seconds or an HTTP
        date), else exponential backoff with full jitter; at most `most` (backoff_max_s)."""
        most = self.backoff_max_s if most is None else most
        if resp is not None:
            after = retry_after(resp.headers.get("Retry-After", ""))
            if after is not None:
                return min(after, most)
        return random.uniform(0, min(most, self.backoff_max_s, self.backoff_s * 2**attempt))

    def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict,
        read_s: float | None,
        within_s: float | None = None,
    ) -> _Response:
        """One HTTP exchange; urllib3's errors raised as they are (a redirect's too). `read_s`:
        how long the answer may take (a /runsync's wait and a margin), else timeout_s;
        `within_s`: connect and answer each within that (a quick call's)."""
        timeout = self._timeout
        if read_s is not None:
            timeout = urllib3.Timeout(connect=self.timeout_s, read=read_s + self.timeout_s)
        if within_s is not None:
            timeout = urllib3.Timeout(connect=within_s, read=within_s)
        try:
            r = self._pool.request(method, url, body=body, headers=headers, timeout=timeout)
        except urllib3.exceptions.MaxRetryError as exc:  # connect / redirect: what failed
            raise (exc.reason or exc) from None
        return _Response(r.status, r.headers, r.data)

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        idempotent: bool = True,
        job_id: str | None = None,
        read_s: float | None = None,
        within_s: float | None = None,
    ) -> dict:
        """`within_s`: one try, within that many seconds (no retries)."""
        url = f"{self.base_url}/{path}"
        headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"}
        op = path.split("?")[0].split("/")[0]
        tries = 0
        rated = 0.0  # seconds a submission has waited out 429s
        while True:
            tries += 1
            last = tries > self.retries or within_s is not None
            try:
                resp = self._send(method, url, body, headers, read_s, within_s)
            except urllib3.exceptions.HTTPError as exc:
                if (idempotent or _never_sent(exc)) and not last:
                    self._sleep(self._delay(tries - 1, None))
                    continue
                detail = _failure(exc)
                if not idempotent and not _never_sent(exc):
                    raise errors.run_unknown(None, detail) from None
                if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                    waited = within_s or (read_s + self.timeout_s if read_s else self.timeout_s)
                    raise errors.no_answer(self.base_url, tries, waited) from None
                raise errors.unreachable(self.base_url, tries, detail) from None
            status = resp.status_code
            if status == 429 and not idempotent and rated < self.rate_wait_s:
                left = self.rate_wait_s - rated  # at least a quarter second between tries
                wait = min(max(self._delay(tries - 1, resp, left), 0.25), left)
                rated += wait
                self._sleep(wait)
                continue
            if status == 429 or (status >= 500 and idempotent):
                if not last:
                    self._sleep(self._delay(tries - 1, resp))
                    continue
                if status == 429:
                    raise errors.rate_limited(tries)
                raise errors.server_error(op, status, tries)
            if status >= 500:
                raise errors.run_unknown(status, f"HTTP {status}")
            if status in (401, 403):
                raise errors.auth_error(status)
            if status == 404:
                if job_id is not None:
                    raise errors.job_not_found(job_id)
                raise errors.unknown_endpoint(self.base_url)
            if status == 413:
                limit = RUNSYNC_LIMIT if op == "runsync" else RUN_LIMIT
                raise errors.payload_too_large(len(body) if body else None, limit, op, 413)
            if status >= 400:
                raise errors.bad_request(op, _reason(resp))
            try:
                data = resp.json()
            except ValueError:
                if not idempotent:  # it reached RunPod, which may have made the job
                    raise errors.run_unknown(status, "an answer that is not JSON") from None
                raise errors.server_error(op, status, tries) from None
            return data if isinstance(data, dict) else {"stream": data}


def retry_after(value: str) -> float | None:
    """An HTTP Retry-After value in seconds (given as seconds or as an HTTP date), or None."""
    value = value.strip()
    if not value:
        return None
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _reason(resp: _Response) -> str:
    try:
        data = resp.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data["error"][:500]
    except ValueError:
        pass
    return f"HTTP {resp.status_code} {resp.text[:200]}"


__all__ = [
    "WORKER_STATES",
    "EndpointClient",
    "EndpointError",
    "Health",
    "JobNotFound",
    "JobRef",
    "JobStatus",
]
