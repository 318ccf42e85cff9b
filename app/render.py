"""Markdown for the page: answers that read as answers, passages with their evidence lit.

A model's "## Changing the port" must not render as a page-sized heading inside a chat
bubble, and a quoted chunk must not shout either: headings become bold lines, except inside
code blocks, which stay code. Offsets (evidence in a passage, unsupported sentences of an
answer) come from app/sentences.py and index the original text, so markup is inserted from
the end backwards before anything else changes the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
UNSUPPORTED_BADGE = ":orange-badge[not found in the sources]"


def quiet_headings(text: str) -> str:
    """Markdown headings as bold lines; code blocks untouched."""
    lines, fence = [], ""
    for line in text.split("\n"):
        opened = _FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
        elif opened:
            fence = opened.group(1)
        else:
            line = _HEADING.sub(r"**\1**", line)
        lines.append(line)
    return "\n".join(lines)


def _escaped(text: str) -> str:
    """Text that cannot close a `:directive[...]` early or start LaTeX."""
    return re.sub(r"([\[\]])", r"\\\1", " ".join(text.split()))


def _insert(text: str, spans: Sequence[tuple[int, int]], wrap: str, after: str = "") -> str:
    """`text` with each span (start, end) replaced by `wrap` around it (`{}` is the span),
    and `after` added behind it; spans must not overlap."""
    for start, end in sorted(spans, reverse=True):
        piece = wrap.format(_escaped(text[start:end])) if wrap else text[start:end]
        text = text[:start] + piece + after + text[end:]
    return text


def passage_markdown(text: str, evidence: Sequence[tuple[int, int]] = ()) -> str:
    """A passage for a source's expander, the sentences that support the answer highlighted."""
    return _dollars(quiet_headings(_insert(text, evidence, ":yellow-background[{}]")))


def answer_markdown(text: str, unsupported: Sequence[tuple[int, int]] = ()) -> str:
    """An answer as the page shows it: body-size headings, and a badge after each sentence
    that no passage supports."""
    return _dollars(quiet_headings(_insert(text, unsupported, "", " " + UNSUPPORTED_BADGE)))


def _dollars(text: str) -> str:
    r"""Dollar signs shown as written (Streamlit reads "$...$" as LaTeX)."""
    return text.replace("$", r"\$")
