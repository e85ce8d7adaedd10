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
