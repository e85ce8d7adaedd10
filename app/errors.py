"""The endpoint client's exception tree, with the user-facing messages in one place.

`EndpointError` is the root; `str(e)` is a sentence a user can act on and never contains the
API key. `status` is the HTTP status when there was one.
"""

from __future__ import annotations


class EndpointError(Exception):
    """Something went wrong talking to the RunPod endpoint."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(EndpointError):
    """401/403: the API key was refused."""


class UnknownEndpoint(EndpointError):
    """404 on an endpoint route: the endpoint id does not exist (for this key)."""


class JobNotFound(EndpointError):
    """404 on a job route: unknown job id, or its result expired."""


JobExpired = JobNotFound


class PayloadTooLarge(EndpointError):
    """The request is bigger than RunPod accepts (10 MB /run, 20 MB /runsync)."""


class RateLimited(EndpointError):
    """429 after the client's retries."""


class BadRequest(EndpointError):
    """400: RunPod refused the request (the server's reason is in the message)."""


class ServerError(EndpointError):
    """5xx after the client's retries, or a /run whose fate is unknown."""


class EndpointUnreachable(EndpointError):
    """No connection to the endpoint after the client's retries."""


MB = 1_000_000  # RunPod's "10 MB" / "20 MB" limits are read as decimal megabytes


def auth_error(status: int) -> AuthError:
    return AuthError(
        f"RunPod refused the API key (HTTP {status}). Check RUNPOD_API_KEY: it must be a key "
        "with access to this endpoint.",
        status,
    )


def unknown_endpoint(base_url: str) -> UnknownEndpoint:
    return UnknownEndpoint(
        f"The endpoint at {base_url} does not exist. Check RUNPOD_ENDPOINT_ID.", 404
    )


def job_not_found(job_id: str) -> JobNotFound:
    return JobNotFound(
        f"Job {job_id} is unknown or its result has expired (RunPod keeps a /run result for "
        "30 minutes after it finishes). Submit the job again.",
        404,
    )


def payload_too_large(size: int | None, limit: int, op: str, status: int | None) -> PayloadTooLarge:
    got = f"The request is {size / MB:.1f} MB" if size is not None else "The request is too large"
    return PayloadTooLarge(
        f"{got}; RunPod accepts at most {limit // MB} MB on /{op}. Use smaller input images "
        "or pass them as URLs.",
        status,
    )


def rate_limited(tries: int) -> RateLimited:
    return RateLimited(
        f"RunPod is rate-limiting this endpoint (HTTP 429, {tries} tries). Wait a little and "
        "try again.",
        429,
    )


def bad_request(op: str, reason: str) -> BadRequest:
    return BadRequest(f"RunPod refused /{op}: {reason}", 400)


def server_error(op: str, status: int, tries: int) -> ServerError:
    return ServerError(
        f"RunPod answered HTTP {status} to /{op} ({tries} tries). This is on RunPod's side; "
        "try again later.",
        status,
    )


def run_unknown(status: int | None, detail: str) -> ServerError:
    return ServerError(
        f"Submitting the job failed ({detail}) after the request reached RunPod, so a job may "
        "or may not have been created; it was not resubmitted to avoid a duplicate. Check the "
        "endpoint's requests in the RunPod console before trying again.",
        status,
    )


def unreachable(base_url: str, tries: int, detail: str) -> EndpointUnreachable:
    return EndpointUnreachable(
        f"Cannot reach the endpoint at {base_url} ({tries} tries): {detail}. Check the network "
        "connection and the endpoint URL.",
    )
