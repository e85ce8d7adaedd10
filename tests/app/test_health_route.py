"""The page's endpoint health, `GET /wanpod/health` (app/ui/health_route.py): the panel, the note
under Generate and the spend line as HTML, priced by the cold start of the quote line's job, which
the page reads from the attributes the quote line's event renders. Who may ask is tested with the
other per-user routes (tests/app/test_isolation.py); the page painting it, in the browser tests
(tests/app/test_ops_browser.py, tests/app/test_inputs_browser.py)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
import requests

from app.studio.checks.health import ColdStart
from app.ui.health_route import cold_attrs, cold_of


def test_the_cold_start_travels_from_the_quote_line_to_the_route_and_back():
    cold = ColdStart(80.0, 0.0928, "H100 PRO")
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', cold_attrs(cold)))
    query = urlencode({"s": attrs["cold-s"], "usd": attrs["cold-usd"], "gpu": attrs["gpu"]})
    assert cold_of(query) == cold
    assert cold_attrs(None) == ""


@pytest.mark.parametrize(
    "query",
    ["", "s=80&usd=0.09", "s=eighty&usd=0.09&gpu=A", "s=-1&usd=0.09&gpu=A", "s=inf&usd=1&gpu=A"],
)
def test_a_missing_or_bad_cold_start_prices_nothing(query):
    assert cold_of(query) is None


def test_the_route_answers_the_three_parts(studio, stack):
    r = requests.get(f"{studio.base_url}/wanpod/health?s=80&usd=0.0928&gpu=H100+PRO", timeout=30)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    parts = r.json()
    assert 'id="wp-health"' in parts["panel"] and 'data-ok="true"' in parts["panel"], parts
    assert parts["note"] == ""  # a healthy endpoint: nothing to warn about
    assert (
        f"<code>{stack.endpoint_id}</code>" in parts["spend"] and "daily budget" in parts["spend"]
    )
    assert stack.api_key not in r.text
