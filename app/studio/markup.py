"""User text inside the studio's Markdown, shown as text.

A prompt (or any text a user typed, or an error quoting it) is put into the Markdown the page
renders (job details, the opened job's panel, the quote line). As Markdown, `![x](http://…)` would
be an image every viewer's browser fetches, `[x](javascript:…)` a link and `<img src=…>` HTML.
`md_text(text)` backslash-escapes every ASCII punctuation character (CommonMark: any of them may be
escaped, and then stands for itself), which also stops bare-URL autolinks (`http\\:`), and folds
line breaks into spaces, so the text shows exactly as typed on one line. `md_value(v)` is for a
parameter value: as it is when it is plain (letters, digits, `_`, `.`, `-`: numbers, file names,
sampler names), else escaped the same way. `md_short(text, most)` is `md_text` of the text cut
to `most` characters at a word's end, the cut marked "…" (cut before escaping: a cut never splits
an escape, and what is left of a tag is text all the same).
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


def md_short(text: object, most: int) -> str:
    """`md_text` of `text` on one line, cut to at most `most` characters at a word's end
    (mid-word only for a first word that long), the cut marked "…"."""
    line = " ".join(str(text).split())
    if len(line) > most:
        head = line[:most]  # its last space is at most - 1 or before: room for the "…"
        cut = head.rsplit(" ", 1)[0] if " " in head else line[: most - 1]
        line = cut.rstrip() + "…"
    return md_text(line)
