"""What the studio's submit refuses before anything is written or sent, naming the field: a
request over RunPod's /run limit names what makes most of it."""

from __future__ import annotations

import dataclasses

import pytest

from app.errors import InputError
from app.studio.forms import FormValues
from tests.app.test_batch import offline_studio

T2V = FormValues(pipeline="t2v_14b", mode="turbo", prompt="a heron", resolution="480p square")


@pytest.fixture
def studio(tmp_path):
    return offline_studio(tmp_path)


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_a_request_over_the_run_limit_names_the_field_that_makes_it(studio, field):
    huge = dataclasses.replace(T2V, mode="quality", **{field: "a heron " * 1_400_000})  # 11.2 MB
    with pytest.raises(InputError) as refused:
        studio.submit(huge)
    label = field.replace("_", " ")
    assert str(refused.value).startswith(
        f"{label}: the request is 11.2 MB, 11.2 MB of it this field's; RunPod's /run takes at "
        "most 10 MB"
    ), str(refused.value)
    assert studio.ledger.recent(5) == []  # nothing written (nothing sent: no endpoint here)


def test_another_users_stored_file_is_refused_as_a_jobs_input(tmp_path):
    """A stored file is served only to a user who may see its job (app/ui/guards.py); sent back
    by path as a job's input (Gradio takes any file of its allowed paths, the results folder
    among them), it is refused the same way, in the same words whether it exists or not: bob
    cannot make ann's kept start image his job's and read it back through his own job."""
    from app.settings import Settings
    from app.studio.owners import Caller
    from tests.helpers import png_bytes

    studio = offline_studio(tmp_path)
    env = {"WANPOD_DATA_DIR": str(tmp_path), "APP_AUTH": "ann:pw1,bob:pw2,root:pw3"}
    studio.settings = Settings.from_env({**env, "APP_ADMINS": "root"})
    rid = studio.ledger.create(template="i2v_14b", mode="turbo", params={}, workflow={},
                               quote=None, gpu="H100 PRO", user="ann")  # fmt: skip
    kept = tmp_path / "results" / rid / "inputs" / "start.png"  # Reuse restores it there
    kept.parent.mkdir(parents=True)
    kept.write_bytes(png_bytes(640, 480))
    i2v = dataclasses.replace(T2V, pipeline="i2v_14b", start_image=str(kept))
    for path in (kept, kept.with_name("gone.png"), tmp_path / "results" / "wp-none" / "x.png"):
        with pytest.raises(InputError) as refused:
            studio.submit(dataclasses.replace(i2v, start_image=str(path)), user="bob")
        assert str(refused.value) == (
            f"start image: {str(path)!r} is not a file of yours; upload the file instead"
        )
    byo = dataclasses.replace(T2V, pipeline="byo", workflow_file=str(kept))
    with pytest.raises(InputError, match=r"^workflow file: .* is not a file of yours"):
        studio.check_files(byo, studio.caller("bob"))
    studio.check_files(i2v, studio.caller("ann"))  # her own
    studio.check_files(i2v, studio.caller("root"))  # an admin sees every job
    studio.check_files(i2v, Caller(None, admin=True))  # no login: the one operator
    assert [r.id for r in studio.ledger.recent(5)] == [rid]  # nothing written for bob
