"""Structure-aware chunking measured in the embedding model's own tokens.

A block is cut into sections at Markdown or reStructuredText headings; small neighbouring
sections are merged up to the chunk size, and a large one is cut into overlapping windows
that end, by preference, at a paragraph, line, sentence or word boundary. Each text is
tokenized once (with character offsets), so chunk spans are exact and the cost stays linear
even for a multi-megabyte single-line file, where LangChain's recursive splitter calls the
tokenizer once per candidate piece and slows to seconds per megabyte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ingest.records import Chunk, LoadedDocument, Markup

# Bump when chunk boundaries change, so stored documents are re-chunked on the next run.
SPLITTER_VERSION = "1"

_FENCE = re.compile(r"^(```|~~~)")
_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")

_MAX_TOKEN_CHARS = 50

Heading = tuple[int, int, str]  # (character offset of the heading, level, text)


def markdown_headings(text: str) -> list[Heading]:
    """ATX (`# x`) and setext (`x` over `===`) headings, ignoring fenced code blocks."""
    headings: list[Heading] = []
    fenced = False
    offset = 0
    previous: tuple[int, str] | None = None
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if _FENCE.match(stripped):
            fenced = not fenced
        elif not fenced:
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
    cursor, path = 0, ()
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

    def windows(self, text: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """(start char, end char, tokens) windows over one section's tokens."""
        size, n = self.chunk_size, len(offsets)
        spans: list[tuple[int, int, int]] = []
        i = 0
        while i < n:
            end = n if i + size >= n else self._best_break(text, offsets, i, i + size)
            spans.append((offsets[i][0], offsets[end - 1][1], end - i))
            if end >= n:
                break
            nxt = max(end - self.chunk_overlap, i + 1)
            while nxt < end and not _word_start(text, offsets, nxt):
                nxt += 1
            i = nxt
        return spans

    @staticmethod
    def _best_break(text: str, offsets: list[tuple[int, int]], i: int, hard: int) -> int:
        """The token index to end before: the latest, strongest boundary in the window's
        second half (paragraph > line > sentence > word); mid-word only as a last resort."""
        best, best_score = hard, -1
        for k in range(hard, i + max(1, (hard - i) // 2) - 1, -1):
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


def _word_start(text: str, offsets: list[tuple[int, int]], k: int) -> bool:
    return k == 0 or offsets[k][0] > offsets[k - 1][1]


def chunk_document(document: LoadedDocument, splitter: TokenSplitter) -> list[Chunk]:
    """All chunks of a document, numbered in reading order."""
    chunks: list[Chunk] = []
    for block in document.blocks:
        for start, end, tokens, path in _pieces(block.text, document.markup, splitter):
            chunks.append(
                Chunk(block.text[start:end], len(chunks), start, end, tokens, block.page, path)
            )
    return chunks


Piece = tuple[int, int, int, tuple[str, ...]]  # (start, end, tokens, heading path)


def _pieces(text: str, markup: Markup, splitter: TokenSplitter) -> list[Piece]:
    """Sections that fit are merged with their neighbours; larger ones are windowed."""
    pieces: list[Piece] = []
    group: list[tuple[Section, list[tuple[int, int]]]] = []

    def close_group() -> None:
        if group:
            tokens = sum(len(offs) for _, offs in group)
            path = _common_prefix([section.path for section, _ in group])
            pieces.append((group[0][1][0][0], group[-1][1][-1][1], tokens, path))
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
            pieces.extend((a, b, n, section.path) for a, b, n in splitter.windows(text, offs))
            continue
        if sum(len(o) for _, o in group) + len(offs) > splitter.chunk_size:
            close_group()
        group.append((section, offs))
    close_group()
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
