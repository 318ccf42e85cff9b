"""Structure-aware chunking measured in the embedding model's own tokens.

A block is cut into sections at Markdown or reStructuredText headings; small neighbouring
sections are merged up to the chunk size, and a large one is cut into overlapping windows
that end, by preference, at a paragraph, line, sentence or word boundary. Each text is
tokenized once (with character offsets), so chunk spans are exact and the cost stays linear
even for a multi-megabyte single-line file, where LangChain's recursive splitter calls the
tokenizer once per candidate piece and slows to seconds per megabyte.

Tables and code blocks (`units`) are never cut when they fit in a chunk: a window ends
before one rather than inside it. A larger one is cut between rows or lines, and each piece
repeats the header row, fence or directive, so it still reads as a table or as code.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, NamedTuple

from quarry.ingest.records import Chunk, LoadedDocument, Markup

# Bump when chunk boundaries change, so stored documents are re-chunked on the next run.
SPLITTER_VERSION = "2"  # 2: tables and code blocks kept whole

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")

_MAX_TOKEN_CHARS = 50

Heading = tuple[int, int, str]  # (character offset of the heading, level, text)


def markdown_headings(text: str) -> list[Heading]:
    """ATX (`# x`) and setext (`x` over `===`) headings, ignoring fenced code blocks."""
    headings: list[Heading] = []
    fence = ""
    offset = 0
    previous: tuple[int, str] | None = None
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        opening = _FENCE.match(stripped)
        if fence:
            if _closes(fence, stripped):
                fence = ""
        elif opening:
            fence = opening.group(1)
        else:
            atx = _ATX.match(stripped)
            setext = _SETEXT.match(stripped)
            if atx:
                headings.append((offset, len(atx.group(1)), atx.group(2)))
            elif setext and previous and previous[1].strip() and not previous[1].startswith(" "):
                level = 1 if setext.group(1)[0] == "=" else 2
                headings.append((previous[0], level, previous[1].strip()))
        previous = (offset, stripped)
        offset += len(line)
    return headings


def rst_headings(text: str) -> list[Heading]:
    """Section titles: a line underlined (optionally also overlined) by one repeated
    punctuation character at least as long; levels follow the order styles first appear."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    styles: dict[tuple[str, bool], int] = {}
    headings: list[Heading] = []
    for i in range(len(lines) - 1):
        title = lines[i].rstrip()
        under = _RST_ADORNMENT.match(lines[i + 1].rstrip())
        if not title or title[0].isspace() or _RST_ADORNMENT.match(title) or not under:
            continue
        if len(lines[i + 1].rstrip()) < len(title.strip()):
            continue
        char = under.group(1)
        over = i > 0 and lines[i - 1].rstrip() == lines[i + 1].rstrip()
        if i > 0 and not over and lines[i - 1].strip() and not _RST_ADORNMENT.match(lines[i - 1]):
            continue  # a paragraph's last line above a table border or transition
        level = styles.setdefault((char, over), len(styles) + 1)
        headings.append((starts[i - 1] if over else starts[i], level, title.strip()))
    return headings


def _closes(fence: str, line: str) -> bool:
    """A Markdown closing fence: the opening character, at least as many, nothing after."""
    stripped = line.strip()
    return (
        len(line) - len(line.lstrip(" ")) <= 3
        and stripped.startswith(fence)
        and not stripped.strip(fence[0])
    )


# -- tables and code blocks -------------------------------------------------------------

_PIPE_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_GRID_BORDER = re.compile(r"^\s*\+([-=]+\+)+\s*$")
_GRID_HEADER = re.compile(r"^\s*\+(=+\+)+\s*$")
_SIMPLE_BORDER = re.compile(r"^\s*=+( +=+)+\s*$")
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(code-block|code|sourcecode|csv-table|list-table)::")
_HEADER_ROWS = re.compile(r"^\s*:header-rows:\s*(\d+)\s*$")
_SIMPLE_TABLE_MAX_LINES = 2000


@dataclass(frozen=True)
class Unit:
    """A table or code block at `start:end`. Its rows or lines run from `cuts[0]` to
    `body_end`, and a piece of it may begin at any of `cuts`; `head` (header rows, opening
    fence, directive) is repeated on top of each later piece and `tail` (a closing fence or
    border) at the bottom of each earlier one."""

    start: int
    end: int
    cuts: tuple[int, ...]
    body_end: int
    head: str
    tail: str = ""


class _Line(NamedTuple):
    start: int
    end: int  # after the line break
    text: str  # without the line break

    @property
    def indent(self) -> int:
        return len(self.text) - len(self.text.lstrip())

    @property
    def blank(self) -> bool:
        return not self.text.strip()


def _lines(text: str, start: int, end: int) -> list[_Line]:
    lines: list[_Line] = []
    offset = start
    for line in text[start:end].splitlines(keepends=True):
        lines.append(_Line(offset, offset + len(line), line.rstrip("\r\n")))
        offset += len(line)
    return lines


def units(text: str, markup: Markup, start: int = 0, end: int | None = None) -> list[Unit]:
    """The tables and code blocks in `text[start:end]`, in order: fenced code and pipe
    tables for Markdown and plain text (loaders write PDF and HTML tables that way); grid
    and simple tables, literal blocks (`::`) and code or table directives for RST."""
    lines = _lines(text, start, len(text) if end is None else end)
    scan = _rst_unit if markup == "rst" else _markdown_unit
    found: list[Unit] = []
    i = 0
    while i < len(lines):
        hit = scan(text, lines, i)
        if hit is None:
            i += 1
            continue
        unit, i = hit
        found.append(unit)
    return found


def _make(
    text: str,
    lines: list[_Line],
    span: tuple[int, int, int, int],
    cuts: list[int],
    head: str | None = None,
) -> Unit:
    """The unit over lines[first:last], `span` being (first, head_end, tail, last):
    lines[first:head_end] is its head (unless `head` is given), lines[tail:last] its tail,
    and `cuts` the indices of the lines where rows begin."""
    first, head_end, tail, last = span
    start, end = lines[first].start, lines[last - 1].end
    body_end = lines[tail].start if tail < last else end
    if head is None:
        head = text[start : lines[head_end].start if head_end < last else end]
    return Unit(
        start=start,
        end=end,
        cuts=tuple(lines[k].start for k in cuts) or (body_end,),
        body_end=body_end,
        head=head if head.endswith("\n") else head + "\n",
        tail=text[body_end:end],
    )


def _markdown_unit(text: str, lines: list[_Line], i: int) -> tuple[Unit, int] | None:
    """A fenced code block or a pipe table starting at lines[i], and the line after it."""
    line = lines[i]
    opening = _FENCE.match(line.text)
    if opening:
        j = i + 1
        while j < len(lines) and not _closes(opening.group(1), lines[j].text):
            j += 1
        last = min(j + 1, len(lines))
        cuts = [k for k in range(i + 1, j) if not lines[k].blank]
        return _make(text, lines, (i, i + 1, j, last), cuts), last
    if (
        "|" in line.text
        and i + 1 < len(lines)
        and "|" in lines[i + 1].text
        and _PIPE_DELIMITER.match(lines[i + 1].text)
    ):
        j = i + 2
        while j < len(lines) and not lines[j].blank and "|" in lines[j].text:
            j += 1
        return _make(text, lines, (i, i + 2, j, j), list(range(i + 2, j))), j
    return None


def _rst_unit(text: str, lines: list[_Line], i: int) -> tuple[Unit, int] | None:
    """A grid or simple table, a code or table directive, or a literal block at lines[i]."""
    line = lines[i]
    if _GRID_BORDER.match(line.text):
        return _grid_table(text, lines, i)
    if _SIMPLE_BORDER.match(line.text):
        return _simple_table(text, lines, i)
    directive = _DIRECTIVE.match(line.text)
    if directive:
        return _directive(text, lines, i, directive.group(2))
    stripped = line.text.strip()
    if stripped.endswith("::") and not stripped.startswith("..") and i + 1 < len(lines):
        k = i + 1
        while k < len(lines) and lines[k].blank:
            k += 1
        last = _indented_end(lines, k, line.indent)
        if k == i + 1 or last <= k:
            return None
        cuts = [m for m in range(k, last) if not lines[m].blank]
        return _make(text, lines, (i, k, last, last), cuts, head="::\n\n"), last
    return None


def _grid_table(text: str, lines: list[_Line], i: int) -> tuple[Unit, int] | None:
    """`+---+` borders around `|` rows; rows are cut at their borders, `+===+` ends the head."""
    j = i + 1
    while j < len(lines) and lines[j].text.lstrip()[:1] in ("+", "|"):
        j += 1
    borders = [k for k in range(i, j) if _GRID_BORDER.match(lines[k].text)]
    last = borders[-1] + 1
    if last - i < 3:
        return None
    header = next((k for k in borders if _GRID_HEADER.match(lines[k].text)), i)
    cuts = [k + 1 for k in borders if header <= k < last - 1]
    return _make(text, lines, (i, header + 1, last, last), cuts), last


def _simple_table(text: str, lines: list[_Line], i: int) -> tuple[Unit, int] | None:
    """`=== ===` borders: top, optionally below the header, and a bottom one followed by a
    blank line. A row starts where the first column has text (else it continues a row)."""
    borders = [i]
    for j in range(i + 1, min(len(lines), i + _SIMPLE_TABLE_MAX_LINES)):
        if _SIMPLE_BORDER.match(lines[j].text):
            borders.append(j)
            if j + 1 == len(lines) or lines[j + 1].blank:
                break
    else:
        return None
    bottom = borders[-1]
    if bottom - i < 2:
        return None
    head_end = borders[1] + 1 if len(borders) >= 3 else i + 1
    column = lines[i].indent
    cuts = [
        k
        for k in range(head_end, bottom)
        if len(lines[k].text) > column and not lines[k].text[column].isspace()
    ]
    return _make(text, lines, (i, head_end, bottom, bottom + 1), cuts), bottom + 1


def _directive(text: str, lines: list[_Line], i: int, kind: str) -> tuple[Unit, int] | None:
    """`.. code-block::` and friends: the directive and its options are the head; code is
    cut between lines, a list-table between `* -` rows (after its `:header-rows:`)."""
    indent = lines[i].indent
    j = i + 1
    while j < len(lines) and lines[j].indent > indent and lines[j].text.strip().startswith(":"):
        j += 1
    options = lines[i + 1 : j]
    while j < len(lines) and lines[j].blank:
        j += 1
    last = _indented_end(lines, j, indent)
    if last <= j:
        return None
    if kind == "list-table":
        column = min(lines[k].indent for k in range(j, last) if not lines[k].blank)
        cuts = [
            k
            for k in range(j, last)
            if lines[k].indent == column and lines[k].text.lstrip().startswith("*")
        ]
    else:
        cuts = [k for k in range(j, last) if not lines[k].blank]
    head_end = j
    if kind.endswith("-table"):
        rows = next((int(m.group(1)) for o in options if (m := _HEADER_ROWS.match(o.text))), 0)
        if 0 < rows < len(cuts):
            head_end, cuts = cuts[rows], cuts[rows:]
    return _make(text, lines, (i, head_end, last, last), cuts), last


def _indented_end(lines: list[_Line], k: int, indent: int) -> int:
    """The index after the last non-blank line of the block indented deeper than `indent`
    that starts at lines[k]."""
    last = k
    while k < len(lines) and (lines[k].blank or lines[k].indent > indent):
        if not lines[k].blank:
            last = k + 1
        k += 1
    return last


@dataclass(frozen=True)
class Section:
    start: int
    end: int
    path: tuple[str, ...]


def sections(text: str, markup: Markup) -> list[Section]:
    """The text cut at its headings; each section knows its heading path."""
    if markup == "markdown":
        headings = markdown_headings(text)
    elif markup == "rst":
        headings = rst_headings(text)
    else:
        headings = []
    result: list[Section] = []
    stack: list[tuple[int, str]] = []
    cursor = 0
    path: tuple[str, ...] = ()
    for offset, level, title in headings:
        if offset > cursor:
            result.append(Section(cursor, offset, path))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        cursor, path = offset, tuple(t for _, t in stack)
    result.append(Section(cursor, len(text), path))
    return [s for s in result if text[s.start : s.end].strip()]


class TokenSplitter:
    """Cuts text into chunks of at most `chunk_size` tokens of `tokenizer` (a fast HF one)."""

    def __init__(self, tokenizer: Any, chunk_size: int, chunk_overlap: int) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("the embedding model's tokenizer has no fast (Rust) version")
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError("chunk_overlap must be at least 0 and below chunk_size")
        self.tokenizer = tokenizer
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    @property
    def fingerprint(self) -> str:
        return f"v{SPLITTER_VERSION}/{self.chunk_size}/{self.chunk_overlap}"

    def offsets(self, text: str) -> list[tuple[int, int]]:
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets: list[tuple[int, int]] = []
        for a, b in encoded["offset_mapping"]:
            # An over-long "word" (base64, minified code) is one [UNK]: count it in pieces,
            # so a chunk's text stays about as long as its token count suggests.
            offsets.extend((x, min(x + _MAX_TOKEN_CHARS, b)) for x in range(a, b, _MAX_TOKEN_CHARS))
        return offsets

    def windows(
        self,
        text: str,
        offsets: list[tuple[int, int]],
        units: Sequence[tuple[int, int]] = (),
    ) -> list[tuple[int, int, int]]:
        """(start char, end char, tokens) windows over one section's tokens. `units` are
        (first, end) token ranges, sorted, none longer than a chunk: never cut inside."""
        size, n = self.chunk_size, len(offsets)
        spans: list[tuple[int, int, int]] = []
        i = 0
        while i < n:
            end, needed = n, 0
            if i + size < n:
                hard = i + size
                straddling = _inside(units, hard)
                if straddling:  # the unit starts the next window instead
                    hard, needed = straddling[0], straddling[1] - size
                end = self._best_break(text, offsets, i, hard, units, needed)
            spans.append((offsets[i][0], offsets[end - 1][1], end - i))
            if end >= n:
                break
            nxt = max(end - self.chunk_overlap, i + 1, needed)
            while nxt < end and not _word_start(text, offsets, nxt):
                nxt += 1
            inside = _inside(units, nxt)
            i = inside[1] if inside else nxt
        return spans

    @staticmethod
    def _best_break(
        text: str,
        offsets: list[tuple[int, int]],
        i: int,
        hard: int,
        units: Sequence[tuple[int, int]] = (),
        lowest: int = 0,
    ) -> int:
        """The token index to end before: the latest, strongest boundary in the window's
        second half (paragraph > line > sentence > word); mid-word only as a last resort;
        never inside a unit, nor below `lowest` (so the next window holds the unit at `hard`)."""
        best, best_score = hard, -1
        floor = max(i + max(1, (hard - i) // 2), lowest)
        for k in range(hard, i, -1):
            if k < floor and best_score >= 0:
                break
            if units and _inside(units, k):
                continue
            gap = text[offsets[k - 1][1] : offsets[k][0]]
            if "\n\n" in gap or "\n\r\n" in gap:
                score = 4
            elif "\n" in gap:
                score = 3
            elif gap and text[offsets[k - 1][1] - 1] in ".!?;:":
                score = 2
            else:
                score = 1 if gap else 0
            if score > best_score:
                best, best_score = k, score
                if score == 4:
                    break
        return best


def _inside(units: Sequence[tuple[int, int]], k: int) -> tuple[int, int] | None:
    """The unit that token boundary `k` would cut (one starting before k, ending after)."""
    if not units:
        return None
    index = bisect_left(units, (k,)) - 1
    if index >= 0 and units[index][1] > k:
        return units[index]
    return None


def _word_start(text: str, offsets: list[tuple[int, int]], k: int) -> bool:
    return k == 0 or offsets[k][0] > offsets[k - 1][1]


def chunk_document(document: LoadedDocument, splitter: TokenSplitter) -> list[Chunk]:
    """All chunks of a document, numbered in reading order."""
    chunks: list[Chunk] = []
    for block in document.blocks:
        for piece in _pieces(block.text, document.markup, splitter):
            text = block.text[piece.start : piece.end] if piece.text is None else piece.text
            chunks.append(
                Chunk(
                    text, len(chunks), piece.start, piece.end, piece.tokens, block.page, piece.path
                )
            )
    return chunks


class Piece(NamedTuple):
    start: int
    end: int
    tokens: int
    path: tuple[str, ...]
    text: str | None = None  # set when it is not text[start:end]: a unit's repeated head


def _pieces(text: str, markup: Markup, splitter: TokenSplitter) -> list[Piece]:
    """Sections that fit are merged with their neighbours; larger ones are windowed."""
    pieces: list[Piece] = []
    group: list[tuple[Section, list[tuple[int, int]]]] = []

    def close_group() -> None:
        if group:
            tokens = sum(len(offs) for _, offs in group)
            path = _common_prefix([section.path for section, _ in group])
            pieces.append(Piece(group[0][1][0][0], group[-1][1][-1][1], tokens, path))
            group.clear()

    for section in sections(text, markup):
        offs = [
            (a + section.start, b + section.start)
            for a, b in splitter.offsets(text[section.start : section.end])
        ]
        if not offs:
            continue
        if len(offs) > splitter.chunk_size:
            close_group()
            pieces.extend(_split_section(text, markup, section, offs, splitter))
            continue
        if sum(len(o) for _, o in group) + len(offs) > splitter.chunk_size:
            close_group()
        group.append((section, offs))
    close_group()
    return pieces


def _split_section(
    text: str,
    markup: Markup,
    section: Section,
    offs: list[tuple[int, int]],
    splitter: TokenSplitter,
) -> list[Piece]:
    """Windows over a section too large for one chunk, around its units: those that fit are
    kept whole, larger ones are cut by `_cut_unit`."""
    size, path = splitter.chunk_size, section.path
    starts = [a for a, _ in offs]
    pieces: list[Piece] = []
    fitting: list[tuple[int, int]] = []
    cursor = 0

    def window(a: int, b: int) -> None:
        shifted = [(u0 - a, u1 - a) for u0, u1 in fitting]
        for start, end, n in splitter.windows(text, offs[a:b], shifted):
            pieces.append(Piece(start, end, n, path))
        fitting.clear()

    for unit in units(text, markup, section.start, section.end):
        u0, u1 = bisect_left(starts, unit.start), bisect_left(starts, unit.end)
        if u1 - u0 <= size:
            if u1 > u0:
                fitting.append((u0, u1))
            continue
        window(cursor, u0)
        pieces.extend(_cut_unit(text, offs[u0:u1], unit, splitter, path))
        cursor = u1
    window(cursor, len(offs))
    return pieces


def _cut_unit(
    text: str,
    offs: list[tuple[int, int]],
    unit: Unit,
    splitter: TokenSplitter,
    path: tuple[str, ...],
) -> list[Piece]:
    """A unit larger than a chunk, cut between rows or lines, greedily. Each piece but the
    first repeats the head, each but the last ends with the tail; a head too large to repeat
    is not, and a row or line too large for a piece is windowed on its own."""
    size = splitter.chunk_size
    starts = [a for a, _ in offs]
    pieces: list[Piece] = []

    def count(a: int, b: int) -> int:
        return bisect_left(starts, b) - bisect_left(starts, a)

    def plain(a: int, b: int) -> None:
        run = offs[bisect_left(starts, a) : bisect_left(starts, b)]
        pieces.extend(Piece(s, e, n, path) for s, e, n in splitter.windows(text, run))

    head, tail = unit.head, unit.tail.rstrip()
    head_n, tail_n = len(splitter.offsets(head)), len(splitter.offsets(tail))
    if head_n + tail_n > size // 2:
        head, tail, head_n, tail_n = "", "", 0, 0
    segments = [(a, b, count(a, b)) for a, b in pairwise((*unit.cuts, unit.body_end))]
    if not segments:
        plain(unit.start, unit.end)
        return pieces
    lead: int | None = unit.start  # where the first piece starts, with the original head
    used = count(unit.start, unit.cuts[0])
    if used + segments[0][2] + tail_n > size:
        plain(unit.start, unit.cuts[0])
        lead, used = None, head_n
    taken: list[tuple[int, int, int]] = []

    def emit(last: bool) -> None:
        start = taken[0][0] if lead is None else lead
        end = unit.end if last else taken[-1][1]
        end = start + len(text[start:end].rstrip())
        body = text[start:end]
        tokens = used + (count(unit.body_end, unit.end) if last else tail_n)
        chunk = (
            ("" if lead is not None else head) + body + ("\n" + tail if tail and not last else "")
        )
        pieces.append(Piece(start, end, tokens, path, None if chunk == body else chunk))

    for segment in segments:
        if taken and used + segment[2] + tail_n > size:
            emit(last=False)
            taken, lead, used = [], None, head_n
        if used + segment[2] + tail_n > size:  # one row or line larger than a piece
            plain(segment[0], segment[1])
            lead, used = None, head_n
            continue
        taken.append(segment)
        used += segment[2]
    if taken and used + count(unit.body_end, unit.end) <= size:
        emit(last=True)
        return pieces
    if taken:
        emit(last=False)
    if text[unit.body_end : unit.end].strip():
        plain(unit.body_end, unit.end)
    return pieces


def _common_prefix(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The heading path shared by merged sections (a parent and its small subsections)."""
    prefix = paths[0]
    for path in paths[1:]:
        n = 0
        while n < min(len(prefix), len(path)) and prefix[n] == path[n]:
            n += 1
        prefix = prefix[:n]
    return prefix
