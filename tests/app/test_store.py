"""Results in S3-compatible object storage (app/studio/store.py), with boto3 against a local S3
server (moto's, a subprocess): files uploaded under the prefix, found again by another replica
through its own cache, presigned URLs that expire, and a studio storing a whole job there without
its keys ever reaching a page, an API answer or a log line."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests

from app.studio.history import gallery_items
from app.studio.results import SavedOutput
from app.studio.shared import SharedSettings
from app.studio.store import LocalStore, S3Store, open_store
from tests.app.conftest import start_studio
from tests.app.test_api import args, finished
from tests.helpers import s3_server, wait_for

KEY_ID, SECRET = "AKIDSTUDIORESULTS", "studioResultsS3secret0123456789abcd"
BUCKET = "wanpod-results"


@pytest.fixture(scope="module")
def s3():
    srv = s3_server(BUCKET)
    yield srv
    srv.stop()


def settings(s3, prefix: str = "team/videos") -> SharedSettings:
    return SharedSettings.from_env({
        "WANPOD_RESULTS_URL": f"s3://{BUCKET}/{prefix}",
        "WANPOD_S3_ENDPOINT_URL": s3.base_url,
        "WANPOD_S3_REGION": "us-east-1",
        "WANPOD_S3_ACCESS_KEY_ID": KEY_ID,
        "WANPOD_S3_SECRET_ACCESS_KEY": SECRET,
    })  # fmt: skip


def bucket_keys(s3) -> list[str]:
    client = boto3.client("s3", endpoint_url=s3.base_url, region_name="us-east-1",
                          aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)  # fmt: skip
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_the_data_folder_is_the_default_store(tmp_path):
    store = open_store(SharedSettings(), tmp_path)
    assert isinstance(store, LocalStore) and store.folder("wp-1") == tmp_path / "wp-1"
    assert store.local(str(tmp_path / "missing.mp4")) is None and store.local(None) is None


def test_s3_keeps_files_under_the_prefix_and_another_replica_finds_them(s3, tmp_path):
    here = open_store(settings(s3), tmp_path / "a")
    assert isinstance(here, S3Store)
    folder = here.folder("wp-abc")
    folder.mkdir(parents=True)
    (folder / "clip.mp4").write_bytes(b"\0\0\0\x18ftypisom-video")
    saved = [SavedOutput(folder / "clip.mp4", "clip.mp4", 19, "video", "video/mp4", "9")]
    kept = here.keep("wp-abc", saved)
    assert kept[0]["path"] == f"s3://{BUCKET}/team/videos/wp-abc/clip.mp4"
    assert kept[0]["mime"] == "video/mp4" and "team/videos/wp-abc/clip.mp4" in bucket_keys(s3)
    there = open_store(settings(s3), tmp_path / "b")  # another replica, empty cache
    local = there.local(kept[0]["path"])
    assert local == tmp_path / "b" / "wp-abc" / "clip.mp4"
    assert local.read_bytes() == b"\0\0\0\x18ftypisom-video"
    assert there.local(f"s3://{BUCKET}/team/videos/wp-abc/gone.mp4") is None  # no such object


def test_presigned_urls_fetch_the_file_and_carry_their_expiry(s3, tmp_path):
    store = open_store(settings(s3, "p"), tmp_path)
    folder = store.folder("wp-1")
    folder.mkdir(parents=True)
    (folder / "v.mp4").write_bytes(b"video bytes")
    (kept,) = store.keep("wp-1", [SavedOutput(folder / "v.mp4", "v.mp4", 11, mime="video/mp4")])
    url = store.presign(kept["path"], expires_s=60)
    assert SECRET not in url and requests.get(url, timeout=10).content == b"video bytes"
    query = parse_qs(urlsplit(url).query)  # signed: the expiry is part of the signature
    expires = int(query["Expires"][0]) if "Expires" in query else None
    assert expires is not None and 55 <= expires - time.time() <= 61
    assert store.presign(kept["path"]) != url  # the default life is PRESIGN_S, not 60 s


def test_a_studio_stores_a_job_in_s3_and_serves_it_without_showing_a_key(stack, s3, tmp_path):
    from gradio_client import Client

    env = {
        "WANPOD_RESULTS_URL": f"s3://{BUCKET}/studio",
        "WANPOD_S3_ENDPOINT_URL": s3.base_url,
        "WANPOD_S3_REGION": "us-east-1",
        "WANPOD_S3_ACCESS_KEY_ID": KEY_ID,
        "WANPOD_S3_SECRET_ACCESS_KEY": SECRET,
    }
    studio = start_studio(stack, tmp_path / "data", **env)
    try:
        client = Client(studio.base_url + "/", verbose=False)
        result = client.predict(*args(prompt="to the bucket", steps=4), api_name="/generate")
        status, video, details, rid = finished(result)
        assert Path(video).read_bytes()[4:8] == b"ftyp"  # served by the studio
        assert any(k.startswith(f"studio/{rid}/") and k.endswith(".mp4") for k in bucket_keys(s3))
        from app.studio.ledger import Ledger

        row = Ledger(tmp_path / "data" / "ledger.sqlite3").get(rid)
        assert row.result_path.startswith(f"s3://{BUCKET}/studio/{rid}/")
        video_key = row.result_path.removeprefix(f"s3://{BUCKET}/")
        # the thumbnail is kept there too, made once the job is COMPLETED (its own thread)
        wait_for(lambda: video_key + ".thumb.jpg" in bucket_keys(s3), what="the thumbnail")
        # another replica's history gallery: the thumbnail from the bucket, not the video
        other = open_store(settings(s3, "studio"), tmp_path / "other")
        (item,) = gallery_items([row], {}, tmp_path / "other", other.local)
        assert (
            item.image.endswith(".thumb.jpg") and Path(item.image).read_bytes()[:2] == b"\xff\xd8"
        )
        assert not list((tmp_path / "other").rglob("*.mp4"))  # the video was not fetched
        for text in (status, details, str(result), studio.output()):
            assert SECRET not in text and KEY_ID not in text
    finally:
        studio.stop()
