"""Hybrid search and the reranking stage over the sample collection (real Chroma, real BM25,
real embeddings, a real cross-encoder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from quarry.app.retrieval import Reranker, Retriever
from quarry.components import Components
from quarry.ingest.collection import StoreError
from quarry.ingest.embedding import Embedder, embedding_model_path
from quarry.settings import QuarrySettings
from tests.conftest import SAMPLE

IDENTIFIER = "QUARRY_SERVER_API_KEY"


def _retriever(
    settings: QuarrySettings,
    embedder: Embedder,
    **options: object,
) -> Retriever:
    tuned = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update=options)})
    return Components(tuned, embedders=[embedder]).retriever(SAMPLE)


@pytest.fixture(scope="session")
def small_cross_encoder(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A cross-encoder built from the offline embedding model's weights (untrained head),
    saved to a folder: loading it by path is what users do with their own rerankers."""
    from sentence_transformers import CrossEncoder

    base = embedding_model_path(embedder.name)
    folder = tmp_path_factory.mktemp("cross-encoder")
    CrossEncoder(base, num_labels=1).save(str(folder))
    return folder


def test_exact_identifiers_come_first_with_bm25(
    sample_retriever: Retriever, sample_settings: QuarrySettings, embedder: Embedder
) -> None:
    hybrid = _retriever(sample_settings, embedder)
    assert hybrid.options.hybrid_weight > 0  # on by default
    assert IDENTIFIER in hybrid.search(IDENTIFIER, 4)[0].text
    keyword_only = _retriever(sample_settings, embedder, hybrid_weight=1.0)
    assert all(IDENTIFIER in p.text for p in keyword_only.search(IDENTIFIER, 2))


def test_dense_only_still_works_and_abstains(
    sample_settings: QuarrySettings, embedder: Embedder
) -> None:
    dense = _retriever(sample_settings, embedder, hybrid_weight=0.0)
    assert not dense.hybrid
    passages = dense.search("How do I change the port of the model server?", 4)
    assert passages[0].source == "configuration.md"
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    assert dense.search("What is the boiling point of tungsten?", 4) == []


def test_the_reranker_orders_the_fused_candidates_by_its_scores(
    sample_settings: QuarrySettings, embedder: Embedder, small_cross_encoder: Path
) -> None:
    question = "How do I change the port of the model server?"
    plain = _retriever(sample_settings, embedder)
    candidates = plain.search(question, 6)
    reranker = Reranker(str(small_cross_encoder))
    scores = reranker.model.predict([(question, p.text) for p in candidates])
    expected = [
        p.chunk_id for _, p in sorted(zip(scores, candidates, strict=True), key=lambda x: -x[0])
    ]

    reranked = _retriever(
        sample_settings, embedder, reranker=str(small_cross_encoder), rerank_candidates=6
    )
    assert [p.chunk_id for p in reranked.search(question, 6)] == expected
    assert [p.chunk_id for p in reranked.search(question, 3)] == expected[:3]


@pytest.mark.heavy  # sentence-transformers tries to load it
def test_a_reranker_that_cannot_load_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot load the reranker .* \(retrieval\.reranker\)"):
        Reranker(str(tmp_path / "no-such-model"))
