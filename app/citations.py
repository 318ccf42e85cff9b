"""Citation markers in an answer, and the sources they point to.

The model is told to cite passages as [1], [2]... A marker whose number was not given to the
model is not a source: it is dropped from the text shown and never listed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from quarry.app.retrieval import Passage
from quarry.app.sentences import MARKER_RE

# [1], [2][3], and the common variant [1, 3]


@dataclass(frozen=True)
class Citation:
    number: int
    passage: Passage


def cited_numbers(answer: str) -> list[int]:
    """Numbers in the order they are first cited."""
    seen: dict[int, None] = {}
    for match in MARKER_RE.finditer(answer):
        for number in match.group(1).split(","):
            seen.setdefault(int(number), None)
    return list(seen)


def resolve(answer: str, passages: Sequence[Passage]) -> tuple[str, list[Citation]]:
    """The answer without invalid markers, and the citations that exist, in citing order.

    `passages[i]` is number i + 1, as the prompt numbered them.
    """
    valid = set(range(1, len(passages) + 1))

    def keep_valid(match: re.Match[str]) -> str:
        numbers = [int(n) for n in match.group(1).split(",") if int(n) in valid]
        return "".join(f"[{n}]" for n in numbers)

    cleaned = MARKER_RE.sub(keep_valid, answer)
    citations = [Citation(n, passages[n - 1]) for n in cited_numbers(cleaned)]
    return cleaned, citations
