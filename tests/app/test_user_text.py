"""What a user typed is shown as text: a prompt with Markdown image syntax, a link or HTML makes
no viewer's browser fetch anything (job details, the opened job's panel, history captions, the
form's note after Reuse settings, the batch table, the status panel), and reads back exactly as
typed."""

from __future__ import annotations

import http.server
import re
import threading

import pytest

from app.studio.markup import md_text, md_value
from tests.helpers import free_port


def test_markdown_punctuation_is_escaped_and_line_breaks_folded():
    text = "a ![x](http://h/p.png) [y](javascript:alert(1)) <img src=q>\n# head"
    out = md_text(text)
    assert "\n" not in out
    unescaped = re.findall(r"(?<!\\)[!\[\]()<>:#=]", out.replace("\\\\", ""))
    assert unescaped == [], out  # every markup character has its backslash
    assert out.replace("\\", "") == " ".join(text.split())  # the same characters, each literal
    assert md_value(1.5) == "1.5" and md_value("wanpod_ab_start.png") == "wanpod_ab_start.png"
    assert md_value("![x](http://h)") == md_text("![x](http://h)")


@pytest.fixture
def bait():
    """A local HTTP server that counts every request (a viewer's browser fetching a URL)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}", hits
    server.shutdown()


@pytest.mark.slow
def test_a_prompt_with_image_markdown_fetches_nothing_in_the_page(studio, client, context, bait):
    from tests.app.test_api import args, finished
    from tests.app.test_browser import open_studio

    url, hits = bait
    prompt = f'a fox ![x]({url}/md.png) <img src="{url}/html.png"> [y]({url}/link)'
    status, _video, details, rid = finished(
        client.predict(*args(prompt=prompt), api_name="/generate")
    )
    assert 'data-state="COMPLETED"' in status and "![" not in details

    page = open_studio(context, studio.base_url + "/")
    # the history gallery's caption and the opened job's panel (job details + recipe)
    page.locator("#wp-hist-refresh").click()
    caption = page.locator("#wp-hist-gallery .caption-label").filter(has_text="md.png").first
    caption.wait_for()
    assert f"a fox ![x]({url}/md.png)" in caption.inner_text()  # as typed, as text
    caption.click()
    page.locator("#wp-hist-details").get_by_text("md.png", exact=False).wait_for()
    assert f"a fox ![x]({url}/md.png)" in page.locator("#wp-hist-details").inner_text()
    assert page.locator("#wp-hist-details img").count() == 0
    # Reuse settings: the form's note names the prompt, as text too
    page.locator("#wp-hist-reuse").click()
    note = page.locator("#wp-form-note")
    note.get_by_text("Form filled from job", exact=False).wait_for()
    assert f"a fox ![x]({url}/md.png)" in note.inner_text(), note.inner_text()
    assert note.locator("img").count() == 0
    # the result column's details, the job opened by id
    page.get_by_text("Open a job by id").click()
    page.locator("#wp-attach-id textarea, #wp-attach-id input").first.fill(rid)
    page.locator("#wp-attach").click()
    page.locator("#wp-details").get_by_text("md.png", exact=False).wait_for()
    assert f'<img src="{url}/html.png">' in page.locator("#wp-details").inner_text()
    assert page.locator("#wp-details img").count() == 0
    # no element asked for the bait (the browser lists every resource it started to fetch)
    fetched = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in fetched if u.startswith(url)] == [] and hits == []
