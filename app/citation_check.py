"""Does each cited passage support the sentence that cites it?

Two cheap signals, computed after the answer is complete: the share of the sentence's
content words found in the passage (lexical), and the cosine similarity of their embeddings
(with the collection's own model). A citation is supported when either is high enough; the
rest are flagged in the page and counted by `quarry eval answers`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.citations import MARKER_RE, Citation
from ingest.embedding import Embedder

SENTENCE_RE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)(?:\s*\[[\d,\s]+\])*", re.M)
WORD_RE = re.compile(r"[a-z0-9][a-z0-9_\-]{2,}")
STOPWORDS = frozenset(
    """the and for are but not you your with that this from they have has can will what when
    which how use uses used into its their them then than there here also only more most
    such been was were does did done all any each other some very just about""".split()  # noqa: SIM905
)
MIN_LEXICAL = 0.5
MIN_SIMILARITY = 0.45


@dataclass(frozen=True)
class CitationCheck:
    number: int
    sentence: str
    lexical: float
    similarity: float

    @property
    def supported(self) -> bool:
        return self.lexical >= MIN_LEXICAL or self.similarity >= MIN_SIMILARITY


def content_words(text: str) -> set[str]:
    return {w for w in WORD_RE.findall(text.lower()) if w not in STOPWORDS}


def lexical_support(sentence: str, passage: str) -> float:
    words = content_words(sentence)
    return len(words & content_words(passage)) / len(words) if words else 0.0


def cited_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, the numbers it cites) for each sentence that cites."""
    found = []
    for match in SENTENCE_RE.finditer(answer):
        sentence = match.group(0)
        numbers = [int(n) for m in MARKER_RE.finditer(sentence) for n in m.group(1).split(",")]
        text = MARKER_RE.sub("", sentence).strip()
        if numbers and text:
            found.append((text, numbers))
    return found


def check_citations(
    answer: str, citations: Sequence[Citation], embedder: Embedder
) -> list[CitationCheck]:
    passages = {c.number: c.passage.text for c in citations}
    pairs = [(s, n) for s, numbers in cited_sentences(answer) for n in numbers if n in passages]
    if not pairs:
        return []
    vectors = embedder.encode([s for s, _ in pairs] + [passages[n] for _, n in pairs])
    half = len(pairs)
    checks = []
    for i, (sentence, number) in enumerate(pairs):
        a, b = vectors[i], vectors[half + i]
        similarity = sum(x * y for x, y in zip(a, b, strict=True))  # both are normalized
        checks.append(
            CitationCheck(number, sentence, lexical_support(sentence, passages[number]), similarity)
        )
    return checks
