"""What the model reads of each passage: all of it, or only the sentences that matter.

A small model (SmolLM2-135M on the cpu profile) loses the answer in two 200-token passages
and copies it well from a few sentences: with `chat.context_sentences` set, the model reads
only that many sentences of the passages, those most similar to the question, each passage's
in its own order. The page still shows whole passages; only the request is shorter (and
faster to first token). docs/decisions.md has the runs behind the default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.retrieval import Passage
from app.sentences import split_sentences
from ingest.embedding import Embedder

MIN_SENTENCE_CHARS = 16  # shorter pieces are headings, labels or list bullets


def focus(
    question: str, passages: Sequence[Passage], embedder: Embedder, sentences: int
) -> dict[str, str]:
    """chunk id -> the text the model reads; a passage none of whose sentences were chosen is
    left out. `sentences` 0 means whole passages."""
    if sentences <= 0:
        return {p.chunk_id: p.text for p in passages}
    pieces = [
        (p.chunk_id, s.start, s.text)
        for p in passages
        for s in split_sentences(p.text)
        if len(s.text) >= MIN_SENTENCE_CHARS and not s.text.lstrip().startswith("#")
    ]
    if not pieces:
        return {p.chunk_id: p.text for p in passages}
    vectors = np.asarray(embedder.encode([question, *(text for _, _, text in pieces)]))
    similarity = vectors[1:] @ vectors[0]
    chosen = sorted(np.argsort(-similarity)[:sentences], key=lambda i: pieces[i][:2])
    texts: dict[str, list[str]] = {}
    for i in chosen:
        chunk_id, _, text = pieces[i]
        texts.setdefault(chunk_id, []).append(" ".join(text.split()))
    return {chunk_id: " ".join(parts) for chunk_id, parts in texts.items()}
