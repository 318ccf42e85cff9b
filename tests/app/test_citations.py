"""Citation markers map to the passages given, and only to those."""

from __future__ import annotations

from quarry.app.citations import cited_numbers, resolve
from quarry.app.retrieval import Passage


def _passage(n: int) -> Passage:
    return Passage(f"id{n}", f"text {n}", f"doc{n}.md", "", "", None, n, 0.5)


def test_numbers_in_citing_order_without_repeats() -> None:
    assert cited_numbers("A [2]. B [1][2]. C [3, 1].") == [2, 1, 3]


def test_invalid_numbers_are_removed_and_never_listed() -> None:
    passages = [_passage(1), _passage(2)]
    text, citations = resolve("Port 8000 [1]. Invented [7]. Both [2, 9].", passages)
    assert text == "Port 8000 [1]. Invented . Both [2]."
    assert [(c.number, c.passage.source) for c in citations] == [(1, "doc1.md"), (2, "doc2.md")]


def test_no_markers_no_citations() -> None:
    assert resolve("Nothing cited.", [_passage(1)]) == ("Nothing cited.", [])


def test_zero_is_not_a_passage() -> None:
    text, citations = resolve("Zero [0].", [_passage(1)])
    assert (text, citations) == ("Zero .", [])
