"""Retrieval and answer metrics, as plain functions over ranked sources.

A retrieved list is the chunks' source paths in rank order. Several chunks of one document
count once, at the rank of its first chunk (a document is found, or not). An expected source
that is absent from the collection still counts in the ideal ranking, so a question whose
document was never ingested scores zero rather than being skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence


def first_relevant_rank(retrieved: Sequence[str], expected: Sequence[str], k: int) -> int | None:
    """1-based rank of the first retrieved chunk from an expected source, within `k`."""
    wanted = set(expected)
    for rank, source in enumerate(retrieved[:k], 1):
        if source in wanted:
            return rank
    return None


def hit_at_k(retrieved: Sequence[str], expected: Sequence[str], k: int) -> float:
    return 1.0 if first_relevant_rank(retrieved, expected, k) is not None else 0.0


def reciprocal_rank(retrieved: Sequence[str], expected: Sequence[str], k: int = 10) -> float:
    rank = first_relevant_rank(retrieved, expected, k)
    return 1.0 / rank if rank else 0.0


def ndcg_at_k(retrieved: Sequence[str], expected: Sequence[str], k: int = 10) -> float:
    """Binary-relevance nDCG; each expected document earns gain once, at its first chunk."""
    wanted, seen = set(expected), set()
    dcg = 0.0
    for rank, source in enumerate(retrieved[:k], 1):
        if source in wanted and source not in seen:
            seen.add(source)
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
    return dcg / ideal if ideal else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), `q` in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def citation_precision(cited: Sequence[str], expected: Sequence[str]) -> float | None:
    """Share of cited passages that come from an expected source; None when nothing is cited."""
    if not cited:
        return None
    wanted = set(expected)
    return sum(source in wanted for source in cited) / len(cited)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def fact_recall(answer: str, facts: Sequence[str]) -> float | None:
    """Share of required facts that appear in the answer (case and spacing ignored)."""
    if not facts:
        return None
    text = _normalise(answer)
    return sum(_normalise(fact) in text for fact in facts) / len(facts)


def mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


# The labels of Quarry's prompts, at the start of a line: an answer that writes them is
# reciting the request ("Question: ... Passages: [1] ...") rather than answering it.
PROMPT_LABELS = re.compile(r"^\s*(?:question|passages?|text|answer the question)\s*:", re.I | re.M)
ECHO_WORDS = 8  # this many words of the system prompt in a row: recited, not answered


def echoes_prompt(answer: str, system_prompt: str) -> bool:
    """Whether the answer recites the prompt: one of its labels, or a run of the system
    prompt's words."""
    if PROMPT_LABELS.search(answer):
        return True
    words = re.findall(r"\w+", system_prompt.lower())
    runs = {" ".join(words[i : i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1)}
    said = " ".join(re.findall(r"\w+", answer.lower()))
    return any(run in said for run in runs)
