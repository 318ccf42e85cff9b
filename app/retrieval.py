"""Find the passages of a collection that answer a query, or say that none do.

The collection is the one `quarry ingest` wrote (cosine space, one chunk a record). The query
is embedded with the model the collection records, so vectors are always comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest.embedding import Embedder
from ingest.store import Store, StoreError, open_client
from quarry.settings import QuarrySettings


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
    def from_chroma(
        cls, chunk_id: str, text: str, meta: dict[str, Any], distance: float
    ) -> Passage:
        page = meta.get("page")
        return cls(
            chunk_id=chunk_id,
            text=text,
            source=str(meta.get("source", "")),
            title=str(meta.get("title", "")),
            heading=str(meta.get("heading_path", "")),
            page=int(page) if page is not None else None,
            chunk_index=int(meta.get("chunk_index", 0)),
            score=1.0 - float(distance),
        )


class EmptyCollectionError(StoreError):
    """There is nothing to search yet; the message says how to add documents."""


class Retriever:
    """Vector search over one collection, with a relevance floor."""

    def __init__(self, store: Store, embedder: Embedder, *, min_score: float = 0.0) -> None:
        self.store = store
        self.embedder = embedder
        self.min_score = min_score

    @classmethod
    def from_settings(
        cls, settings: QuarrySettings, collection: str, embedder: Embedder | None = None
    ) -> Retriever:
        store = Store(open_client(settings), collection)
        if not store.exists():
            raise EmptyCollectionError(
                f'The collection "{collection}" does not exist yet. Add documents with '
                f"`quarry ingest PATH --collection {collection}` or the upload box."
            )
        model = store.model()
        if embedder is None or (model and embedder.name != model):
            embedder = Embedder(model or settings.embedding.model or "")
        return cls(store, embedder, min_score=settings.chat.min_score)

    def count(self) -> int:
        return int(self.store.chunks_collection().count())

    def search(self, query: str, k: int) -> list[Passage]:
        """The `k` best passages scoring at least `min_score`, best first."""
        if self.count() == 0:
            raise EmptyCollectionError(
                f'The collection "{self.store.name}" is empty. Add documents with '
                f"`quarry ingest PATH --collection {self.store.name}` or the upload box."
            )
        vector = self.embedder.encode([query])[0]
        found = self.store.chunks_collection().query(
            query_embeddings=[vector],
            n_results=k,
            include=["documents", "metadatas", "distances"],
        )
        passages = [
            Passage.from_chroma(i, text, meta, distance)
            for i, text, meta, distance in zip(
                found["ids"][0],
                found["documents"][0],
                found["metadatas"][0],
                found["distances"][0],
                strict=True,
            )
        ]
        return [p for p in passages if p.score >= self.min_score]

    def neighbours(self, source: str, chunk_index: int, radius: int) -> list[Passage]:
        """The chunks around one chunk of a document, in document order (to read more)."""
        low, high = chunk_index - radius, chunk_index + radius
        found = self.store.chunks_collection().get(
            where={
                "$and": [
                    {"source": source},
                    {"chunk_index": {"$gte": low}},
                    {"chunk_index": {"$lte": high}},
                ]
            },
            include=["documents", "metadatas"],
        )
        passages = [
            Passage.from_chroma(i, text, meta, 0.0)
            for i, text, meta in zip(
                found["ids"], found["documents"], found["metadatas"], strict=True
            )
        ]
        return sorted(passages, key=lambda p: p.chunk_index)
