"""User text inside the studio's Markdown, shown as text.

A prompt (or any text a user typed, or an error quoting it) is put into the Markdown the page
renders (job details, the opened job's panel, the quote line). As Markdown, `![x](http://…)` would
be an image every viewer's browser fetches, `[x](javascript:…)` a link and `<img src=…>` HTML.
`md_text(text)` backslash-escapes every ASCII punctuation character (CommonMark: any of them may be
escaped, and then stands for itself), which also stops bare-URL autolinks (`http\\:`), and folds
line breaks into spaces, so the text shows exactly as typed on one line. `md_value(v)` is for a
parameter value: as it is when it is plain (letters, digits, `_`, `.`, `-`: numbers, file names,
sampler names), else escaped the same way.
"""

from __future__ import annotations

import re
import string

_PUNCT = re.compile("([" + re.escape(string.punctuation) + "])")
_PLAIN = re.compile(r"[\w.\-]*")


def md_text(text: object) -> str:
    """`text` as Markdown that renders as that text, literally, on one line."""
    return _PUNCT.sub(r"\\\1", " ".join(str(text).split()))


def md_value(value: object) -> str:
    """A parameter value for Markdown: unchanged when plain, else `md_text`."""
    text = str(value)
    return text if _PLAIN.fullmatch(text) else md_text(text)
