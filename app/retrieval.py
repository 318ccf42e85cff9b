"""Find the passages of a collection that answer a query, or say that none do.

Two searches run side by side: dense vectors (meaning) from Chroma and BM25 (exact words)
from the collection's keyword index. Their rankings are fused by reciprocal rank fusion,
which needs no score calibration between the two; an optional cross-encoder then reorders
the best fused hits. Whether to answer at all is decided by the best cosine similarity: below
`min_score` nothing in the collection is about the question. Every default is measured in
docs/decisions.md.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from quarry.app.scope import Scope
from quarry.ingest.collection import Collection, StoreError
from quarry.ingest.embedding import Embedder, cosine
from quarry.ingest.records import StoredChunk
from quarry.settings import RetrievalSettings

RRF_K = 60  # the constant of Cormack et al. (2009); ranks matter, not raw scores


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk and where it came from."""

    chunk_id: str
    text: str
    source: str
    title: str
    heading: str
    page: int | None
    chunk_index: int
    score: float  # cosine similarity, 1 is identical
    doc_id: str = ""  # the document, (root, source): two roots may both hold a README.md

    @property
    def label(self) -> str:
        """How a person finds it: "guide.md, Install > Linux, page 3"."""
        parts = [self.source]
        if self.heading:
            parts.append(self.heading)
        if self.page is not None:
            parts.append(f"page {self.page}")
        return ", ".join(parts)

    @property
    def order_key(self) -> tuple[str, int]:
        return (self.source, self.chunk_index)

    @classmethod
    def from_chunk(cls, chunk: StoredChunk, score: float) -> Passage:
        record = chunk.record
        return cls(
            chunk_id=chunk.id,
            text=chunk.text,
            source=record.source,
            title=record.title,
            heading=record.heading_path,
            page=record.page,
            chunk_index=record.chunk_index,
            score=score,
            doc_id=record.doc_id,
        )


class Searcher(Protocol):
    """What the chat chain and its tools need of a retriever: `Retriever`, or a test's fake."""

    embedder: Embedder

    @property
    def top_k(self) -> int: ...

    def search(self, query: str, k: int) -> list[Passage]: ...

    def search_many(self, queries: Sequence[str], k: int) -> list[Passage]: ...

    def neighbours(self, anchor: Passage, radius: int) -> list[Passage]: ...

    def within(self, scope: Scope | None) -> Searcher: ...

    def warm(self) -> None: ...


class EmptyCollectionError(StoreError):
    """There is nothing to search yet; the message says how to add documents."""


class Reranker:
    """A sentence-transformers CrossEncoder that scores (query, passage) pairs jointly."""

    def __init__(self, name: str) -> None:
        from sentence_transformers import CrossEncoder

        try:
            self.model = CrossEncoder(name)
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"cannot load the reranker {name!r} (retrieval.reranker): {exc}. Give a "
                "CrossEncoder model name or folder, or unset it to search without one."
            ) from None
        self.name = name

    def rank(self, query: str, passages: list[Passage]) -> list[Passage]:
        if len(passages) < 2:
            return passages
        scores = self.model.predict([(query, p.text) for p in passages], show_progress_bar=False)
        order = sorted(range(len(passages)), key=lambda i: -float(scores[i]))
        return [passages[i] for i in order]


class Retriever:
    """Hybrid search over one collection, with an abstention threshold."""

    def __init__(
        self,
        collection: Collection,
        embedder: Embedder,
        options: RetrievalSettings | None = None,
        *,
        reranker: Reranker | None = None,
    ) -> None:
        self.collection = collection
        self.embedder = embedder
        self.options = options or RetrievalSettings()
        self.hybrid = self.options.hybrid_weight > 0
        self.reranker = reranker
        self.scope: Scope | None = None
        self._doc_ids: frozenset[str] | None = None  # the scope's documents

    def within(self, scope: Scope | None) -> Retriever:
        """The same search, limited to the documents `scope` covers (the whole collection
        when None); raises ScopeError when it covers none of them."""
        scoped = copy.copy(self)
        scoped.scope, scoped._doc_ids = scope, None
        if scope is not None:
            scoped._doc_ids = scope.documents(self.collection.sources(), self.collection.name)
        return scoped

    @property
    def top_k(self) -> int:
        return self.options.top_k

    @property
    def min_score(self) -> float:
        return self.options.min_score

    def count(self) -> int:
        return self.collection.count()

    def search(self, query: str, k: int) -> list[Passage]:
        """The `k` best passages, best first; none when nothing clears `min_score`."""
        return self.search_many([query], k)

    def search_many(self, queries: Sequence[str], k: int) -> list[Passage]:
        """The `k` best passages for several phrasings of one need, their rankings fused;
        the first phrasing leads.

        A follow-up is searched joined with the questions before it and alone: whichever
        phrasing finds the passage, it ranks. Fusion ties (each phrasing's first hit, its
        second...) go to the earlier phrasing, so the order of `queries` matters: with the
        question alone first, follow-ups on the PEPs found the right document first 0.446 of
        the time at k=3, against 0.708 with the joined phrasing first (docs/decisions.md).
        One batch encodes every query. Abstention looks at each phrasing: none clearing
        `min_score` means nothing answers any of them.
        """
        if self.count() == 0:
            raise EmptyCollectionError(
                f'The collection "{self.collection.name}" is empty. Add documents with '
                f"`quarry ingest PATH --collection {self.collection.name}` or the upload box."
            )
        vectors = self.embedder.encode(list(queries))
        candidates = max(k, self.options.candidates)
        keep = k if self.reranker is None else max(k, self.options.rerank_candidates)
        if len(queries) > 1:
            keep = max(keep, 2 * k)  # fusing needs more than each query's own top k
        rankings = []
        for query, vector in zip(queries, vectors, strict=True):
            dense = self._dense(vector, candidates)
            if not dense or dense[0].score < self.options.min_score:
                continue
            fused = self._fuse(query, vector, dense, keep) if self.hybrid else dense
            rankings.append(fused)
        if not rankings:
            return []
        ranked = rankings[0] if len(rankings) == 1 else _fuse_rankings(rankings)
        if self.reranker is not None:
            ranked = self.reranker.rank(queries[0], ranked[:keep])
        return ranked[:k]

    def warm(self) -> None:
        """Load the embedding model, Chroma's index and the keyword index, and run each
        search once with words the collection has (BM25 compiles its scorer on first use)."""
        self.search_many([self.collection.sample_text()], 1)

    def best_score(self, query: str) -> float:
        """The cosine similarity of the closest chunk: what abstention is decided on."""
        dense = self._dense(self.embedder.encode([query])[0], 1)
        return dense[0].score if dense else -1.0

    def _dense(self, vector: Sequence[float], n: int) -> list[Passage]:
        found = self.collection.nearest(vector, n, self._doc_ids)
        return [Passage.from_chunk(c, score) for c, score in found]

    def _fuse(
        self, query: str, vector: Sequence[float], dense: list[Passage], keep: int
    ) -> list[Passage]:
        """Reciprocal rank fusion of the dense and BM25 rankings, weighted by hybrid_weight.

        Only the `keep` best are read from Chroma: fetching every BM25-only candidate with its
        vector was most of the cost of hybrid search at 30,000 chunks.
        """
        hits = self.collection.keyword_search(query, len(dense), self._doc_ids)
        weight = self.options.hybrid_weight
        best = _rrf(
            [([p.chunk_id for p in dense], 1 - weight), ([h.chunk_id for h in hits], weight)]
        )[:keep]
        known = {p.chunk_id: p for p in dense}
        known.update(self._fetch([cid for cid in best if cid not in known], vector))
        return [known[cid] for cid in best if cid in known]

    def _fetch(self, ids: list[str], vector: Sequence[float]) -> dict[str, Passage]:
        """Chunks found only by BM25, with their cosine similarity to the query."""
        return {
            chunk.id: Passage.from_chunk(chunk, cosine(vector, chunk.vector or ()))
            for chunk in self.collection.get(ids, vectors=True)
        }

    def neighbours(self, anchor: Passage, radius: int) -> list[Passage]:
        """The chunks around one chunk of its document, in document order (to read more)."""
        low, high = anchor.chunk_index - radius, anchor.chunk_index + radius
        chunks = self.collection.document_chunks(anchor.doc_id, low, high)
        return [Passage.from_chunk(chunk, 0.0) for chunk in chunks]


def _rrf(rankings: Sequence[tuple[Sequence[str], float]]) -> list[str]:
    """Reciprocal rank fusion: chunk ids by the sum of weight / (RRF_K + rank) over the
    (ranking, weight) pairs, best first; ties in the order the rankings come (a stable
    sort over first appearance)."""
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, chunk_id in enumerate(ids):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (RRF_K + rank + 1)
    return sorted(fused, key=lambda cid: -fused[cid])


def _fuse_rankings(rankings: Sequence[list[Passage]]) -> list[Passage]:
    """Whole rankings fused with equal weights; a passage keeps its best similarity."""
    best: dict[str, Passage] = {}
    for passage in (p for ranking in rankings for p in ranking):
        known = best.get(passage.chunk_id)
        if known is None or passage.score > known.score:
            best[passage.chunk_id] = passage
    return [best[cid] for cid in _rrf([([p.chunk_id for p in r], 1.0) for r in rankings])]
