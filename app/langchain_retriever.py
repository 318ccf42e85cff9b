"""Quarry's hybrid search as a LangChain retriever, for a user's own chain.

    from quarry.app.langchain_retriever import QuarryRetriever

    retriever = QuarryRetriever.for_collection("quarry-docs", k=4)
    docs = retriever.invoke("How do I change the port of the model server?")

Each `Document` is a passage: its text, and where it is (`source`, `heading`, `page`) with
its cosine `score` in the metadata. Dense and keyword search are fused as on the page, the
same abstention applies (no documents when nothing in the collection is about the query),
and `scope` limits the search to some folders or files.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from quarry.app.retrieval import Passage, Retriever
from quarry.app.scope import Scope
from quarry.settings import QuarrySettings


def as_document(passage: Passage) -> Document:
    return Document(
        page_content=passage.text,
        id=passage.chunk_id,
        metadata={
            "source": passage.source,
            "title": passage.title,
            "heading": passage.heading,
            "page": passage.page,
            "label": passage.label,
            "score": passage.score,
        },
    )


class QuarryRetriever(BaseRetriever):
    """The passages of a Quarry collection that answer a query, best first."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    searcher: Retriever = Field(description="Hybrid search over one collection.")
    k: int = Field(4, ge=1, le=50, description="Passages per query.")

    @classmethod
    def for_collection(
        cls,
        collection: str | None = None,
        *,
        k: int | None = None,
        scope: Sequence[str] | None = None,
        settings: QuarrySettings | None = None,
    ) -> QuarryRetriever:
        """A retriever over `collection` (the configured one by default), with Quarry's
        settings (QUARRY_* variables, quarry.toml) unless `settings` are given."""
        from quarry.components import Components
        from quarry.settings import load_settings

        settings = settings or load_settings()
        searcher = Components(settings).retriever(collection).within(Scope.of(scope))
        return cls(searcher=searcher, k=k or settings.retrieval.top_k)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [as_document(p) for p in self.searcher.search(query, self.k)]
