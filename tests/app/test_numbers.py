"""NaN and infinity in a numeric API field are refused naming the field (not "internal error
(ValueError)"), through gradio_client against the studio."""

from __future__ import annotations

import math

import pytest
from gradio_client.exceptions import AppError

from tests.app.test_api import args


@pytest.mark.parametrize(
    ("field", "value"),
    [("cfg", math.nan), ("steps", math.nan), ("seed", math.inf), ("seconds", -math.inf)],
)
def test_a_non_finite_number_is_refused_naming_the_field(client, field, value):
    with pytest.raises(AppError, match=rf"^{field}: {value!r} is not allowed; allowed: a finite"):
        client.predict(*args(**{field: value}), api_name="/generate")
    quote = client.predict(*args(**{field: value}), api_name="/quote")
    assert quote.replace("\\", "").startswith(f"⚠️ {field}: {value!r} is not allowed")
