"""Metrics on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from quarry.eval.metrics import (
    citation_precision,
    echoes_prompt,
    fact_recall,
    hit_at_k,
    mean,
    ndcg_at_k,
    percentile,
    reciprocal_rank,
)


def test_hit_at_k_looks_only_at_the_first_k() -> None:
    ranked = ["a.md", "b.md", "c.md"]
    assert hit_at_k(ranked, ["c.md"], 2) == 0.0
    assert hit_at_k(ranked, ["c.md"], 3) == 1.0
    assert hit_at_k([], ["c.md"], 5) == 0.0


def test_reciprocal_rank_uses_the_first_relevant_chunk() -> None:
    assert reciprocal_rank(["a.md", "b.md", "b.md"], ["b.md"]) == 0.5
    assert reciprocal_rank(["x.md"] * 10 + ["b.md"], ["b.md"], k=10) == 0.0  # rank 11


def test_ndcg_counts_each_document_once() -> None:
    # b.md at ranks 1 and 2: gain once. Ideal for one expected document is 1/log2(2) = 1.
    assert ndcg_at_k(["b.md", "b.md", "a.md"], ["b.md"]) == 1.0
    # Relevant at rank 3 only: 1/log2(4) = 0.5.
    assert ndcg_at_k(["x.md", "y.md", "b.md"], ["b.md"]) == pytest.approx(0.5)


def test_ndcg_with_two_expected_documents() -> None:
    # Found at ranks 1 and 3: (1 + 1/log2(4)) / (1 + 1/log2(3)).
    expected = (1 + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a.md", "x.md", "b.md"], ["a.md", "b.md"]) == pytest.approx(expected)


def test_ndcg_with_a_source_missing_from_the_collection() -> None:
    # "gone.md" was never ingested: it still counts in the ideal ranking.
    expected = 1 / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a.md", "x.md"], ["a.md", "gone.md"]) == pytest.approx(expected)
    assert ndcg_at_k(["x.md"], ["gone.md"]) == 0.0


def test_ndcg_when_there_are_ties_in_rank_order() -> None:
    # Equal scores keep the retriever's order: the same list always scores the same.
    ranked = ["x.md", "a.md"]
    assert ndcg_at_k(ranked, ["a.md"]) == pytest.approx(1 / math.log2(3))


def test_percentile_interpolates_like_numpy() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_citation_precision_and_fact_recall() -> None:
    assert citation_precision(["a.md", "b.md", "a.md"], ["a.md"]) == pytest.approx(2 / 3)
    assert citation_precision([], ["a.md"]) is None
    assert fact_recall("Use  --PORT or QUARRY_SERVER_PORT.", ["--port", "8000"]) == 0.5
    assert fact_recall("anything", []) is None


def test_mean_skips_missing_values() -> None:
    assert mean([1.0, None, 0.0]) == 0.5
    assert mean([None]) is None


def test_an_answer_that_recites_the_prompt_is_an_echo() -> None:
    system = "You are Quarry, an assistant that answers questions about the user's own documents."
    assert echoes_prompt(
        "You are Quarry, an assistant that answers questions about the user's own documents.",
        system,
    )
    assert echoes_prompt("The port is 8000.\n\nQuestion: How do I change it?", system)
    assert echoes_prompt("Passages:\n[1] configuration.md", system)
    assert not echoes_prompt("Pass --port 8001 to quarry serve [1].", system)
    assert not echoes_prompt("The question is answered in the text below.", system)
