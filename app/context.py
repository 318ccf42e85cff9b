"""What the model reads of each passage: all of it, or only the sentences that matter.

A small model (SmolLM2-135M on the cpu profile) loses the answer in two 200-token passages
and copies it better from a few sentences: with `chat.context_sentences` set, the model reads
only that many sentences of the passages, those that share the most (stemmed) words with the
question, each passage's in its own order. Word overlap kept as many of the expected facts as
embedding similarity on docs/ and more on the PEPs, and costs nothing before the first token
(embedding twenty sentences took 55 ms on two busy cores). The page still shows whole
passages; only the request is shorter. docs/decisions.md has the runs behind the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from quarry.app.citation_check import evidence_sentences
from quarry.app.retrieval import Passage
from quarry.ingest.keyword_index import Analyzer

MIN_SENTENCE_CHARS = 16  # shorter pieces are headings, labels or list bullets
LENGTH_PENALTY = 0.02  # per word: of two sentences with the same words, the shorter says it


@cache
def _analyzer() -> Analyzer:
    return Analyzer()  # the keyword index's words: lower-cased, stop words out, stemmed


def stems(text: str) -> set[str]:
    return set(_analyzer()(text))


def focus(question: str, passages: Sequence[Passage], sentences: int) -> dict[str, str]:
    """chunk id -> the text the model reads; a passage none of whose sentences were chosen is
    left out. `sentences` 0 means whole passages."""
    if sentences <= 0:
        return {p.chunk_id: p.text for p in passages}
    pieces = [
        (p.chunk_id, s.start, s.text)
        for p in passages
        for s in evidence_sentences(p.text)
        if len(s.text) >= MIN_SENTENCE_CHARS
    ]
    if not pieces:
        return {p.chunk_id: p.text for p in passages}
    wanted = stems(question)
    scores = [
        len(wanted & stems(text)) / (1 + LENGTH_PENALTY * len(text.split()))
        for _, _, text in pieces
    ]
    best = sorted(range(len(pieces)), key=lambda i: -scores[i])[:sentences]  # stable on ties
    chosen = sorted(best, key=lambda i: pieces[i][:2])
    texts: dict[str, list[str]] = {}
    for i in chosen:
        chunk_id, _, text = pieces[i]
        texts.setdefault(chunk_id, []).append(" ".join(text.split()))
    return {chunk_id: " ".join(parts) for chunk_id, parts in texts.items()}
