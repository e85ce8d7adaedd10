"""What the user asked is stored with the job and given back as it was (app/studio/reuse.py):
no reverse mapping from width x height to a preset or from frames to the duration slider, except
in the one-time migration of rows stored before the ledger kept the form values."""

from __future__ import annotations

import json
import sqlite3

import pytest

from app.studio.cost import Quote
from app.studio.forms import FormValues
from app.studio.forms_catalog import load_forms
from app.studio.ledger import Ledger
from app.studio.reuse import asked, migrate_forms

FORMS, _ = load_forms()
QUOTE = Quote(gpu="H100 PRO", per_s=0.00116, execution_s=60.0, dollars=0.0696)


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite3")


def test_the_ledger_keeps_the_form_values_and_the_quote_as_typed_records(ledger):
    values = FormValues(
        pipeline="t2v_14b", mode="turbo", prompt="a kite", resolution="480p square",
        seconds=3.25, seed=None, randomize=True, start_image="/tmp/upload.png", steps=6,
    )  # fmt: skip
    rid = ledger.create(
        template="t2v_14b", mode="turbo", params={"seed": 42}, workflow={}, quote=QUOTE,
        gpu="H100 PRO", form=asked(values, 42),
    )  # fmt: skip
    row = ledger.get(rid)
    assert row.quote == QUOTE
    assert row.form == FormValues(
        pipeline="t2v_14b", mode="turbo", prompt="a kite", resolution="480p square",
        seconds=3.25, seed=42, randomize=False, steps=6,
    )  # fmt: skip


def test_rows_stored_before_the_form_column_get_their_values_once_on_open(tmp_path):
    path = tmp_path / "old.sqlite3"
    form = FORMS["t2v_14b"]
    preset = form.presets[-1]
    params = {"prompt": "a heron", "seed": 9, "width": preset.width, "height": preset.height}
    with sqlite3.connect(path) as c:  # a ledger of the studio before schema versions and forms
        c.execute(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, job_id TEXT, created_at REAL NOT NULL,"
            " updated_at REAL NOT NULL, template TEXT NOT NULL, mode TEXT NOT NULL,"
            " params TEXT NOT NULL, workflow TEXT NOT NULL, quote TEXT NOT NULL,"
            " gpu TEXT NOT NULL, state TEXT NOT NULL)"
        )
        c.execute(
            "INSERT INTO jobs VALUES ('wp-old', 'job-1', 1, 1, 't2v_14b', 'quality', ?, '{}',"
            " '{}', 'H100 PRO', 'COMPLETED')",
            (json.dumps({**params, "frames": form.frames(2.5)}),),
        )
    again = Ledger(path, forms=FORMS).get("wp-old").form
    assert (again.resolution, again.seconds, again.seed, again.randomize) == (
        preset.label, 2.5, 9, False,
    )  # fmt: skip
    assert again.prompt == "a heron" and again.mode == "quality"
    assert migrate_forms(Ledger(path), FORMS) == 0  # once
