"""No secret (RunPod API key, S3 secret) reaches a page, the config, the API description, an API
answer, an error message or the studio's log."""

from __future__ import annotations

import urllib.request

from gradio_client import Client

from tests.app.conftest import S3_SECRET, start_studio
from tests.app.test_api import args

PATHS = [
    "/",
    "/config",
    "/gradio_api/info",
    "/gradio_api/info?all_endpoints=true",
    "/gradio_api/openapi.json",
    "/?view=api",
    "/gradio_api/startup-events",
    "/theme.css",
    "/manifest.json",
    "/robots.txt",
]


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.read().decode("utf-8", "replace")


def assert_clean(text: str, secrets: list[str], where: str) -> None:
    for s in secrets:
        assert s not in text, f"a secret leaked into {where}"


def test_no_secret_in_pages_config_api_answers_or_logs(stack, studio, client):
    secrets = [stack.api_key, S3_SECRET]
    seen = 0
    for path in PATHS:
        body = fetch(studio.base_url + path)
        assert_clean(body, secrets, path)
        seen += len(body)
    assert seen > 10_000  # the pages were really served
    answers = [
        client.predict(*args(), api_name="/quote"),
        client.predict(*args(seed=5), api_name="/generate"),
        client.predict("wp-unknown", api_name="/attach"),
    ]
    for answer in answers:
        assert_clean(repr(answer), secrets, "an API answer")
    assert_clean(studio.output(), secrets, "the studio's log")


def test_endpoint_errors_do_not_echo_the_key(stack, tmp_path):
    wrong = "rpa_WRONGkeyWRONGkeyWRONGkey1234"
    bad = start_studio(stack, tmp_path, RUNPOD_API_KEY=wrong)
    try:
        c = Client(bad.base_url + "/", verbose=False)
        # the endpoint did not take the job: the failure stays on the page, and an API client
        # reads it in the structured result (app/ui/callbacks.py generate)
        *_page, result = c.predict(*args(), api_name="/generate")
        assert result["state"] == "FAILED", result
        message = result["error"]
        assert "the endpoint did not take the job" in message
        assert wrong not in message and S3_SECRET not in message
        assert wrong not in bad.output() and S3_SECRET not in bad.output()
    finally:
        bad.stop()
