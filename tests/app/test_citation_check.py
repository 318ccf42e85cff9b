"""Citation checks with the real embedding model."""

from __future__ import annotations

from app.citation_check import attribute, check_citations, cited_sentences, lexical_support
from app.citations import Citation
from app.retrieval import Passage
from ingest.embedding import Embedder

PORTS = Passage(
    "c1",
    "The model server listens on port 8000 by default. Change it with the --port flag.",
    "configuration.md", "", "", None, 0, 0.8,
)  # fmt: skip
PRESETS = Passage(
    "c2", "Factual (0) always gives the same answer.", "chat.md", "", "", None, 3, 0.6
)


def test_sentences_and_the_numbers_they_cite() -> None:
    answer = "The server uses port 8000 [1]. Presets vary [2][1]. No citation here."
    assert cited_sentences(answer) == [
        ("The server uses port 8000 .", [1]),
        ("Presets vary .", [2, 1]),
    ]


def test_lexical_support_counts_content_words() -> None:
    assert lexical_support("The server listens on port 8000", PORTS.text) == 1.0
    assert lexical_support("Bananas are yellow", PORTS.text) == 0.0


def test_a_supported_and_an_unsupported_citation(embedder: Embedder) -> None:
    answer = "Change the server's port with the --port flag [1]. Bananas grow in Ecuador [2]."
    checks = check_citations(answer, [Citation(1, PORTS), Citation(2, PRESETS)], embedder)
    assert [(c.number, c.supported) for c in checks] == [(1, True), (2, False)]
    assert checks[0].similarity > checks[1].similarity


def test_no_citations_no_checks(embedder: Embedder) -> None:
    assert check_citations("Nothing cited.", [Citation(1, PORTS)], embedder) == []


def test_a_model_that_cites_nothing_gets_citations_where_supported(embedder: Embedder) -> None:
    answer = "Change the port with the --port flag.\nBananas grow in Ecuador."
    attributed = attribute(answer, [PRESETS, PORTS], embedder)
    assert attributed == "Change the port with the --port flag. [2]\nBananas grow in Ecuador."
