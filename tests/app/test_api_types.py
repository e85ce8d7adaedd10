"""A value of another type than its field's, sent through the studio's API (`python -m app`
against the local stack), is refused naming the field, the value as sent and what is allowed;
it is never converted into another job (bool("false") is True: `upscale="false"` ran a paid
upscale; int(4.5) is 4: 4.5 steps ran with 4)."""

from __future__ import annotations

import pytest
from gradio_client.exceptions import AppError

from app.studio.markup import md_text
from tests.app.test_api import args


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"upscale": "false"}, "upscale: 'false' is not allowed; allowed: true or false"),
        ({"randomize": "no"}, "randomize: 'no' is not allowed; allowed: true or false"),
        ({"prompt": {"text": "a fox in snow"}}, "prompt: {'text': 'a fox in snow'} is not "),
        ({"mode": "quality", "steps": 4.5}, "steps: 4.5 is not allowed; allowed: a whole "),
        ({"mode": "quality", "steps": [1]}, "steps: [1] is not allowed; allowed: a whole number"),
    ],
)
def test_a_value_of_another_type_is_refused_not_run(client, change, refusal):
    with pytest.raises(AppError) as exc:
        client.predict(*args(**change), api_name="/generate")
    assert str(exc.value).startswith(refusal), str(exc.value)
    text = client.predict(*args(**change), api_name="/quote")
    assert text.startswith(f"⚠️ {md_text(refusal)}"), text


def test_the_chains_colour_match_takes_a_boolean_only(client):
    """The Longer video section's colour-match switch is no form field: it refuses another type
    itself (it was Gradio's own Checkbox, which passed "false" on, true to Python)."""
    with pytest.raises(AppError) as exc:
        client.predict(job_id="wp-none", prompt="", colour_match="false", api_name="/extend")
    assert str(exc.value) == (
        "match each new start frame's colours to the previous segment: 'false' is not allowed; "
        "allowed: true or false"
    ), str(exc.value)
