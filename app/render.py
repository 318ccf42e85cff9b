"""Markdown for the page: answers that read as answers, passages with their evidence lit.

A model's "## Changing the port" must not render as a page-sized heading inside a chat
bubble, and a quoted chunk must not shout either: headings become bold lines, except inside
code blocks, which stay code. Offsets (evidence in a passage, unsupported sentences of an
answer) come from app/sentences.py and index the original text, so markup is inserted from
the end backwards before anything else changes the text.

Markup only ever goes around prose. Evidence spans may cross a code block (neighbouring
sentences are merged into one span, and the fenced block between them has no sentence), a
list or a table; a highlight around all of that would flatten the fence onto one line and
the block would be lost. So each span is cut into the pieces of prose it covers, line by
line, and the code, fence lines, list, quote and heading markers and table pipes between
them are left exactly as they were.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_INDENTED_CODE = re.compile(r"(?: {4}|[ \t]*\t)[ \t]*\S")
# What opens a list item, heading or quote: kept outside the highlight.
_MARKERS = re.compile(r"[ \t]*(?:(?:[-*+]|\d{1,9}[.)]|#{1,6}|>)(?=[ \t]|$)[ \t]*)*")
_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)")
_CELL_BORDER = re.compile(r"(?<!\\)\|")
_WORD = re.compile(r"[^\W_]")
UNSUPPORTED_BADGE = ":orange-badge[not found in the sources]"


@dataclass(frozen=True)
class _Line:
    """One line of a text: `text[start:end]`, its prose starting at `content`."""

    start: int
    end: int
    content: int
    code: bool  # inside a fenced block (fences included) or an indented one
    marked: bool  # starts with a list, quote or heading marker
    heading: bool
    table: bool  # a "|" outside inline code; GFM then splits cells at every "|", code or not


def _lines(text: str) -> list[_Line]:
    """The lines of `text`, with what markup must keep away from."""
    lines: list[_Line] = []
    fence, start = "", 0
    for raw in text.split("\n"):
        opened = _FENCE.match(raw)
        if fence:
            code = True
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
        elif opened:
            fence, code = opened.group(1), True
        else:  # indented code follows a blank line (or more indented code), not a paragraph
            after_paragraph = bool(lines) and not lines[-1].code and lines[-1].end > lines[-1].start
            code = bool(_INDENTED_CODE.match(raw)) and not after_paragraph
        prefix = _MARKERS.match(raw)
        content = start + (prefix.end() if prefix else 0)
        lines.append(
            _Line(
                start,
                start + len(raw),
                content,
                code,
                marked=bool(prefix and prefix.group(0).strip()),
                heading=raw.lstrip().startswith("#"),
                table=bool(_CELL_BORDER.search(_INLINE_CODE.sub("", raw))),
            )
        )
        start += len(raw) + 1
    return lines


def _prose(text: str, change: Callable[[str], str]) -> str:
    """`text` with `change` applied to everything but code (blocks and inline code)."""
    out = []
    for line in _lines(text):
        if line.code:
            out.append(text[line.start : line.end])
            continue
        parts, position = [], line.start
        for m in _INLINE_CODE.finditer(text, line.start, line.end):
            parts += [change(text[position : m.start()]), m.group(0)]
            position = m.end()
        out.append("".join(parts) + change(text[position : line.end]))
    return "\n".join(out)


def quiet_headings(text: str) -> str:
    """Markdown headings as bold lines; code blocks untouched."""
    return "\n".join(
        line_text if line.code else _HEADING.sub(r"**\1**", line_text)
        for line in _lines(text)
        for line_text in [text[line.start : line.end]]
    )


def _escaped(text: str) -> str:
    """Text that cannot close a `:directive[...]` early, on one line (a piece only spans
    lines where a paragraph wraps). Code keeps its brackets: a backslash would show there."""
    one_line = re.sub(r"[ \t]*\n[ \t]*", " ", text)
    return _prose(one_line, lambda prose: re.sub(r"([\[\]])", r"\\\1", prose))


def _balanced(code: str) -> bool:
    """Whether every "]" in `code` closes a "[" before it, and every "[" is closed."""
    depth = 0
    for char in code:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _wrapped(prose: str, wrap: str) -> str:
    """`wrap` around `prose`, but not around inline code with unbalanced brackets ("`a]`"):
    the directive's label counts brackets even inside code, so it would end there."""

    def lit(part: str) -> str:
        stripped = part.strip()
        return part.replace(stripped, wrap.format(_escaped(stripped)), 1) if stripped else part

    out, position = [], 0
    for m in _INLINE_CODE.finditer(prose):
        if not _balanced(m.group(0)):
            out += [lit(prose[position : m.start()]), m.group(0)]
            position = m.end()
    return "".join([*out, lit(prose[position:])])


def _pieces(text: str, lines: Sequence[_Line], start: int, end: int) -> list[tuple[int, int]]:
    """The prose inside `text[start:end]` that markup may wrap without changing the blocks
    around it: per line, after its markers, per table cell, never in code, never cutting
    inline code, only pieces with a letter or digit (not a table's "---" row). A paragraph's
    wrapped lines stay one piece."""
    pieces: list[tuple[int, int]] = []
    joins = False  # the last piece ends its line, and a wrapped line may go on with it
    for line in lines:
        if line.code or line.end < start or line.start > end:
            joins = False
            continue
        borders = [m.start() for m in _CELL_BORDER.finditer(text, line.content, line.end)]
        cells = zip([line.content, *(i + 1 for i in borders)], [*borders, line.end], strict=True)
        for cell_start, cell_end in cells if line.table else [(line.content, line.end)]:
            a, b = max(start, cell_start), min(end, cell_end)
            for m in _INLINE_CODE.finditer(text, cell_start, cell_end):  # never cut code
                a = m.start() if m.start() < a < m.end() else a
                b = m.end() if m.start() < b < m.end() else b
            a += len(text[a:b]) - len(text[a:b].lstrip())
            b -= len(text[a:b]) - len(text[a:b].rstrip())
            if not _WORD.search(text[a:b]):
                continue
            if joins and a == line.content and not (line.table or line.marked):
                pieces[-1] = (pieces[-1][0], b)
            else:
                pieces.append((a, b))
            joins = False
        line_end = line.start + len(text[line.start : line.end].rstrip())
        joins = bool(pieces) and pieces[-1][1] == line_end and not (line.table or line.heading)
    return pieces


def _insert(text: str, spans: Sequence[tuple[int, int]], wrap: str, after: str = "") -> str:
    """`text` with the prose of each span (start, end) put in `wrap` (`{}` is the prose), and
    `after` added behind the span's last prose; spans must not overlap. A span with no prose
    (only code) gets nothing."""
    lines = _lines(text)
    edits: list[tuple[int, int, str]] = []
    for start, end in spans:
        pieces = _pieces(text, lines, start, end)
        if wrap:
            edits += [(a, b, _wrapped(text[a:b], wrap)) for a, b in pieces]
        if after and pieces:
            edits.append((pieces[-1][1], pieces[-1][1], after))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def passage_markdown(text: str, evidence: Sequence[tuple[int, int]] = ()) -> str:
    """A passage for a source's expander, the sentences that support the answer highlighted."""
    return _dollars(quiet_headings(_insert(text, evidence, ":yellow-background[{}]")))


def answer_markdown(text: str, unsupported: Sequence[tuple[int, int]] = ()) -> str:
    """An answer as the page shows it: body-size headings, and a badge after each sentence
    that no passage supports."""
    return _dollars(quiet_headings(_insert(text, unsupported, "", " " + UNSUPPORTED_BADGE)))


def _dollars(text: str) -> str:
    r"""Dollar signs shown as written (Streamlit reads "$...$" as LaTeX); code shows them
    as they are, so "\$" there would show its backslash."""
    return _prose(text, lambda prose: prose.replace("$", r"\$"))
