"""Gradio's copies of the files sent to the studio (uploads, in its cache: GRADIO_TEMP_DIR) are
deleted once older than WANPOD_GRADIO_CACHE_S (app/ui/serving.py's cache_cleanup), and all of
them when the studio stops; the studio keeps what a job needs itself."""

from __future__ import annotations

from gradio_client import handle_file

from app.ui.serving import CACHE_SWEEP_MAX_S, cache_cleanup
from tests.app.conftest import start_studio
from tests.app.test_api import args, finished
from tests.helpers import wait_for


def test_the_cache_is_swept_at_most_hourly_for_copies_older_than_the_setting():
    assert cache_cleanup(86400) == (CACHE_SWEEP_MAX_S, 86400) == (3600, 86400)
    assert cache_cleanup(2) == (2, 2)


def test_an_uploads_copy_is_deleted_when_old_and_its_job_still_reruns(stack, png_file, tmp_path):
    from gradio_client import Client

    cache = tmp_path / "gradio"
    env = {"GRADIO_TEMP_DIR": str(cache), "WANPOD_GRADIO_CACHE_S": "2"}
    app = start_studio(stack, tmp_path / "data", **env)
    try:
        client = Client(app.base_url + "/", verbose=False)
        start = handle_file(str(png_file))
        result = client.predict(*args("i2v_14b", start=start, seconds=1.0), api_name="/generate")
        status, _, _, rid = finished(result)
        assert 'data-state="COMPLETED"' in status, status
        copies = list(cache.rglob("start.png"))
        assert len(copies) == 1, sorted(cache.rglob("*"))  # the upload, as Gradio received it
        wait_for(lambda: not copies[0].exists(), 30, "the upload's copy deleted once 2 s old")
        status, _, details, again = finished(client.predict(rid, api_name="/rerun"))
        assert 'data-state="COMPLETED"' in status and again != rid, status
        assert "start_image=wanpod_" in details  # the studio's own copy of the image was sent
        client.predict(*args("i2v_14b", start=start, seconds=1.0), api_name="/quote")
        assert list(cache.rglob("start.png"))  # uploaded again: a new copy
    finally:
        app.stop()
    assert not list(cache.rglob("start.png"))  # every copy goes when the studio stops
