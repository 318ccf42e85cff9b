"""Sentences of a model's Markdown answer, with their offsets.

Citation matching, citation checking and loop detection all need to know where a sentence of
the answer starts and ends, and a marker added after a sentence must never land inside
`127.0.0.1`, `main.rs`, inline code or a fenced code block. A naive split on ". " gets all
of these wrong, so there is one splitter, here.

How: a masked copy of the answer is split instead of the answer itself. Regions that must
never be cut (code blocks, inline code, list and heading markers, the dot of an abbreviation)
are replaced by placeholders of the same length, so every offset found in the copy is valid
in the original. Dots inside a token (3.12, os.path.join, https://a.b/c?d=e) need no mask:
a sentence only ends at punctuation followed by whitespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A fenced code block, from its opening fence to its closing fence or the end of the text.
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}(?=[^`\n]*$)|~{3,}).*?(?:^[ \t]*(?P=fence)[`~]*[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
# Inline code on one line: `x`, ``x ` y``.
_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)")
# What opens a list item, heading or quote; not part of the sentence.
_LINE_PREFIX = re.compile(r"^(?:[ \t]*(?:[-*+]|\d{1,9}[.)]|#{1,6}|>)(?=[ \t]|$))+", re.MULTILINE)
# What may close a sentence after its punctuation: brackets, quotes, emphasis.
_CLOSERS = "[)\"'\u2019\u201d*_]*"
# Abbreviations whose dot does not end a sentence. "No." only before a number; "etc." only
# before a lowercase word or a number ("..., etc. Quarry reads them" is two sentences).
_ABBREVIATION = re.compile(
    r"\b(?:(?i:e\.g|i\.e|vs|cf|approx|incl|esp|et al)|Dr|Mr|Mrs|Ms|Prof|Jr|Sr|Fig|Figs|Eq|Sec|Vol)"
    r"\."
    r"|\bNo\.(?=[ \t]*\d)"
    rf"|\b(?i:etc)\.(?={_CLOSERS}[ \t]+[a-z0-9(])"
)
# An ellipsis that the sentence goes on after: "wait... then".
_ELLIPSIS = re.compile(r"(?:\.\.\.|…)(?=[ \t]+[a-z])")
# The end of a sentence: punctuation, closing quotes or brackets, citation markers.
_END = re.compile(
    rf"[.!?…]+{_CLOSERS}"
    r"(?:[ \t]*\[\d+(?:[ \t]*,[ \t]*\d+)*\](?!\())*"
    r"(?=\s|\Z)"
)
# A citation marker, [1] or [1, 3]: group 1 holds the numbers.
MARKER_RE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_ENDS_CITED = re.compile(MARKER_RE.pattern + r"[ \t]*$")
# A line that starts a block of its own (list item, heading, quote, table row, fence) or
# cannot continue onto the next (a heading or a table row).
_BLOCK_START = re.compile(r"[ \t]*(?:[-*+][ \t]|\d{1,9}[.)][ \t]|#|>|\||```|~~~)")
_WORD = re.compile(r"[^\W_]")


@dataclass(frozen=True)
class Sentence:
    """One sentence: `text[start:end]` of the original, stripped of surrounding whitespace."""

    start: int
    end: int
    text: str  # == the original text[start:end]


def _mask(text: str, pattern: re.Pattern[str], fill: str) -> str:
    return pattern.sub(lambda m: fill * len(m.group(0)), text)


def _masked(text: str) -> str:
    """`text` with the regions that must not be cut replaced, length for length."""
    masked = _mask(text, _FENCE, "\n")  # blank lines: no sentence, and a cut either side
    masked = _mask(masked, _INLINE_CODE, "x")  # one word: never cut, never a marker inside
    masked = _mask(masked, _LINE_PREFIX, " ")  # stripped off the sentence like whitespace
    masked = _mask(masked, _ABBREVIATION, "x")
    return _mask(masked, _ELLIPSIS, "x")


def _wraps(text: str, newline: int) -> bool:
    """Whether the line break at `newline` only wraps a paragraph (documents are often
    hard-wrapped at 72-100 columns): both lines are prose, and the next one is not a block."""
    line_start = text.rfind("\n", 0, newline) + 1
    line = text[line_start:newline]
    next_end = text.find("\n", newline + 1)
    following = text[newline + 1 : next_end if next_end >= 0 else len(text)]
    if not line.strip() or not following.strip():
        return False
    if _BLOCK_START.match(following) or line.lstrip().startswith(("#", "|")):
        return False
    return not _ENDS_CITED.search(line)  # a line that ends in a citation ends its sentence


def split_sentences(text: str) -> list[Sentence]:
    """Prose sentences of a Markdown answer, in order.

    A sentence ends at . ! ? (with any closing quotes, brackets and citation markers after
    them) followed by whitespace, and at a line break that ends a line of its own (list items,
    headings and table rows are one sentence per line; a line that wraps a paragraph is not).
    Fenced code blocks (``` or ~~~, closed or still open at the end) are
    never part of a sentence and produce none; inline code spans are kept whole inside the
    sentence that contains them; a sentence never ends inside a token. Sentences without a
    letter or digit (only markers, punctuation, a table rule) are left out.
    """
    masked = _masked(text)
    cuts = {m.end() for m in _END.finditer(masked)}
    cuts |= {i for i, char in enumerate(masked) if char == "\n" and not _wraps(text, i)}
    cuts.add(len(text))
    sentences, position = [], 0
    for cut in sorted(cuts):
        piece = masked[position:cut]
        start = position + len(piece) - len(piece.lstrip())
        end = cut - (len(piece) - len(piece.rstrip()))
        position = cut
        if start < end and _WORD.search(MARKER_RE.sub("", text[start:end])):
            sentences.append(Sentence(start, end, text[start:end]))
    return sentences


def insert_markers(text: str, markers: dict[int, str]) -> str:
    """`text` with each marker added right after its sentence, separated by one space.

    `markers` maps a sentence's index in `split_sentences(text)` to a string such as "[2]".
    A sentence that ends a line gets its marker before the line break; the text is otherwise
    unchanged byte for byte. An index with no sentence raises IndexError.
    """
    sentences = split_sentences(text)
    for index in markers:
        if not 0 <= index < len(sentences):
            raise IndexError(f"no sentence {index} (the text has {len(sentences)})")
    out, position = [], 0
    for index in sorted(markers):
        if markers[index]:
            end = sentences[index].end
            out += [text[position:end], " ", markers[index]]
            position = end
    out.append(text[position:])
    return "".join(out)
