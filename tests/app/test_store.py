"""Results in S3-compatible object storage (app/studio/store.py), with boto3 against a local S3
server (moto's, a subprocess): files uploaded under the prefix, found again by another replica
through its own cache, presigned URLs that expire, and a studio storing a whole job there without
its keys ever reaching a page, an API answer or a log line."""

from __future__ import annotations

import base64
import os
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests

from app.endpoint.states import JobState
from app.settings import PRICES_PATH, Settings
from app.studio import cost
from app.studio.history import gallery_items
from app.studio.jobs import Studio
from app.studio.ledger import Ledger
from app.studio.owners import ANYONE
from app.studio.results import SavedOutput
from app.studio.shared import SharedSettings
from app.studio.store import LocalStore, S3Store, open_store
from app.studio.tracker import Tracker
from tests.app.conftest import start_studio
from tests.app.test_api import args, finished
from tests.helpers import png_bytes, s3_server, wait_for
from workflows.fill import fill

KEY_ID, SECRET = "AKIDSTUDIORESULTS", "studioResultsS3secret0123456789abcd"
BUCKET = "wanpod-results"
PRICES = cost.load_prices(PRICES_PATH)


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


def studio_env(s3, prefix: str) -> dict[str, str]:
    """A studio's environment for results under `s3://BUCKET/<prefix>` of the server `s3`."""
    return {
        "WANPOD_RESULTS_URL": f"s3://{BUCKET}/{prefix}",
        "WANPOD_S3_ENDPOINT_URL": s3.base_url,
        "WANPOD_S3_REGION": "us-east-1",
        "WANPOD_S3_ACCESS_KEY_ID": KEY_ID,
        "WANPOD_S3_SECRET_ACCESS_KEY": SECRET,
    }


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

    studio = start_studio(stack, tmp_path / "data", **studio_env(s3, "studio"))
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


USERS = {"ann": "ann-pw-41", "bob": "bob-pw-42"}
NOT_HERS = "is not a (job|chain) of this studio"


@pytest.fixture(scope="module")
def replicas(stack, postgres, s3, tmp_path_factory):
    """Two studios (A, B) on one PostgreSQL ledger and one bucket, with users ann and bob; and
    a start image."""
    from gradio_client import Client

    folder = tmp_path_factory.mktemp("replicas")
    env = {**studio_env(s3, "shared"), "WANPOD_DATABASE_URL": postgres.new_database(),
           "APP_AUTH": ",".join(f"{u}:{p}" for u, p in USERS.items())}  # fmt: skip
    a = start_studio(stack, folder / "a", **env)
    b = start_studio(stack, folder / "b", **env)
    png = folder / "start.png"
    png.write_bytes(png_bytes(300, 200, (200, 40, 40)))
    try:
        clients = {
            name: Client(proc.base_url + "/", auth=(user, USERS[user]), verbose=False)
            for name, proc, user in (("ann_a", a, "ann"), ("ann_b", b, "ann"), ("bob_b", b, "bob"))
        }
        yield SimpleNamespace(a=a, b=b, folder=folder, png=png, **clients)
    finally:
        a.stop()
        b.stop()


def test_an_image_job_is_rerun_reused_and_promoted_through_another_replica(replicas, s3):
    """The start image of ann's image-to-video job sent through A is kept in the store too, so
    B reruns it and restores it for Reuse settings and Draft → final, with the bytes A sent;
    bob reaches none of it through B."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    r, folder = replicas, replicas.folder
    form = args("i2v_14b", start=handle_file(str(r.png)), prompt="a red kite", seed=5)
    status, _, _, rid = finished(r.ann_a.predict(*form, api_name="/generate"))
    assert 'data-state="COMPLETED"' in status, status
    (kept,) = (folder / "a" / "inputs" / rid).iterdir()
    sent = base64.b64decode(kept.read_text())  # the start image as the worker had it

    status, _, _, again = finished(r.ann_b.predict(rid, api_name="/rerun"))
    assert 'data-state="COMPLETED"' in status, status
    resent = folder / "b" / "inputs" / again / kept.name
    assert base64.b64decode(resent.read_text()) == sent
    reused = r.ann_b.predict(rid, api_name="/reuse")
    assert Path(reused[4]).read_bytes() == sent  # the start image field
    *final, _note = r.ann_b.predict(rid, api_name="/draft_final")
    assert (final[1], Path(final[4]).read_bytes()) == ("quality", sent)
    assert f"shared/{rid}/inputs/{kept.name}" in bucket_keys(s3)

    for route in ("/rerun", "/reuse", "/draft_final"):
        with pytest.raises(AppError, match=NOT_HERS):
            r.bob_b.predict(rid, api_name=route)
    restored = folder / "b" / "results" / rid / "inputs" / kept.name
    for user, expected in (("ann", 200), ("bob", 403)):
        session = requests.Session()
        session.post(f"{r.b.base_url}/login", data={"username": user, "password": USERS[user]})
        answer = session.get(f"{r.b.base_url}/gradio_api/file={restored}", timeout=30)
        assert answer.status_code == expected, (user, answer.status_code)
    for text in (r.a.output(), r.b.output()):
        assert SECRET not in text and KEY_ID not in text


def test_a_storyboard_is_rerun_and_reused_from_its_start_image_through_another_replica(
    replicas,
):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    r = replicas
    story = args("i2v_14b", start=handle_file(str(r.png)), prompt="a kite", seconds=1.0)
    status, _, cid = r.ann_a.predict(*story, "a kite\nthe kite lands", False,
                                     api_name="/storyboard")  # fmt: skip
    assert "COMPLETED" in status, status
    (start,) = (r.folder / "a" / "results" / "chains" / cid).glob("start_0.*")
    values = r.ann_b.predict(cid, api_name="/reuse_chain")
    assert Path(values[4]).read_bytes() == start.read_bytes()
    status, _, other = r.ann_b.predict(cid, api_name="/rerun_chain")
    assert other != cid and "COMPLETED" in status, status
    for route in ("/reuse_chain", "/rerun_chain"):
        with pytest.raises(AppError, match=NOT_HERS):
            r.bob_b.predict(cid, api_name=route)


def test_an_image_job_is_sent_when_the_store_refuses_its_inputs(stack, tmp_path, caplog):
    """Keeping the inputs in the store comes after /run: a store refusing them does not undo a
    job already sent; its inputs stay the submitting replica's, and the log says so without
    the store's words (which may name the bucket)."""
    from app.endpoint import EndpointClient
    from app.studio.forms import FormValues
    from app.studio.forms_catalog import load_forms

    class Refusing(LocalStore):
        def keep_input(self, rid: str, path: Path) -> None:
            raise PermissionError(f"AccessDenied on s3://{BUCKET}/{rid} for {KEY_ID}")

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    endpoint = EndpointClient(stack.base_url, stack.api_key)
    tracker = Tracker(ledger, endpoint, tmp_path, PRICES, store=Refusing(tmp_path / "results"))
    forms, _ = load_forms()
    settings = Settings.from_env({"WANPOD_DATA_DIR": str(tmp_path), "WANPOD_PREFLIGHT": "off"})
    studio = Studio(settings=settings, forms=forms, fill=fill, endpoint=endpoint, ledger=ledger,
                    tracker=tracker, prices=PRICES)  # fmt: skip
    png = tmp_path / "start.png"
    png.write_bytes(png_bytes(300, 200))
    values = FormValues(pipeline="i2v_14b", prompt="a kite", start_image=str(png), seed=3,
                        resolution="480p landscape", seconds=1.0, randomize=False)  # fmt: skip
    try:
        rid = studio.submit(values)
        assert ledger.get(rid).job_id and ledger.get(rid).error is None  # sent
        (kept,) = studio.inputs_dir(rid).iterdir()
        assert studio.kept_input(rid, kept.name) == kept  # this replica reruns it
        (line,) = [r.getMessage() for r in caplog.records if "could not be put" in r.getMessage()]
        assert rid in line and "PermissionError" in line
        assert BUCKET not in line and KEY_ID not in line
    finally:
        tracker.stop()


def completed_answer(video: bytes) -> SimpleNamespace:
    """RunPod's /status answer for a COMPLETED job whose video comes back as base64."""
    return SimpleNamespace(
        state="COMPLETED", progress=None, error=None, delay_ms=5, execution_ms=2000,
        worker_id="w", output={"images": [{"filename": "v.mp4", "type": "base64",
                                           "data": base64.b64encode(video).decode()}]},
    )  # fmt: skip


def test_a_store_out_of_reach_keeps_the_job_live_and_stores_it_when_it_answers(tmp_path):
    """The object store away when a job ends (here: its server stopped) is no reason to fail a
    paid job and drop its video: the page says the store is unavailable, and the job is stored
    once the store answers again, as for a full disk."""
    srv = s3_server(BUCKET)
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    video = os.urandom(50_000)
    tracker = Tracker(ledger, SimpleNamespace(status=lambda job_id: completed_answer(video)),
                      tmp_path, PRICES, poll_s=0.05,
                      store=open_store(settings(srv, "away"), tmp_path / "results"))  # fmt: skip
    # no retry of its own while the store is brought back (a retry between the restarted
    # server's start and its bucket's creation meets NoSuchBucket, which is no outage): the
    # test asks for the next try itself, as the retry timer does (Keeping._again_later)
    tracker.retry_s = 3600
    studio = Studio(settings=Settings.from_env({"WANPOD_DATA_DIR": str(tmp_path)}), forms={},
                    fill=fill, endpoint=None, ledger=ledger, tracker=tracker,
                    prices=PRICES)  # fmt: skip
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None,
                        gpu="H100 PRO")  # fmt: skip
    ledger.update(rid, job_id="job-0", state=JobState.IN_PROGRESS)
    srv.stop()
    tracker.start()
    try:
        head = wait_for(
            lambda: (h := studio.view(rid, ANYONE).progress.head).startswith("the result store")
            and h, 60, "the page to say the store is unavailable",
            lambda: str(studio.view(rid, ANYONE)),
        )  # fmt: skip
        assert "unavailable" in head and srv.base_url not in head and BUCKET not in head
        assert ledger.get(rid).live  # not FAILED: its video is stored once the store answers
        srv.start()
        urllib.request.urlopen(urllib.request.Request(f"{srv.base_url}/{BUCKET}", method="PUT"))
        tracker.watch(rid)  # the retry timer's call
        row = wait_for(lambda: (r := ledger.get(rid)).final and r, 60, "the retried store")
        assert row.state == "COMPLETED" and row.error is None, row
        assert row.result_path == f"s3://{BUCKET}/away/{rid}/v.mp4"
        assert f"away/{rid}/v.mp4" in bucket_keys(srv)
        assert studio.view(rid, ANYONE).progress.head.startswith("Done")
    finally:
        tracker.stop()
        srv.stop()


def test_a_completed_job_whose_video_the_store_cannot_give_says_so(s3, tmp_path):
    """Opened or attached through a replica that cannot fetch its video (the object gone), a
    COMPLETED job's panel says there is no video to play and why, not just "Done"."""
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    tracker = Tracker(ledger, SimpleNamespace(status=lambda job_id: None), tmp_path, PRICES,
                      store=open_store(settings(s3, "gone"), tmp_path / "results"))  # fmt: skip
    studio = Studio(settings=Settings.from_env({"WANPOD_DATA_DIR": str(tmp_path)}), forms={},
                    fill=fill, endpoint=None, ledger=ledger, tracker=tracker,
                    prices=PRICES)  # fmt: skip
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None,
                        gpu="H100 PRO")  # fmt: skip
    ledger.update(rid, job_id="job-1", state=JobState.COMPLETED, finished_at=time.time(),
                  result_path=f"s3://{BUCKET}/gone/{rid}/v.mp4")  # fmt: skip
    view = studio.view(rid, ANYONE)
    assert view.video is None and view.final
    assert view.progress.head.startswith("Done") and view.progress.head.endswith(
        "no video to play: it could not be fetched from the result store; open the job again later"
    ), view.progress.head
