"""The composition root: Quarry's parts built from one settings object, each once.

The CLI, the chat page, the API and the evaluations all get their parts here, so a part is
wired in one place: one Chroma client, one embedding model per name (loading one takes
seconds), one keyword index per collection. Nothing is built before it is first asked for,
and nothing here holds a user's state: a chain is cheap to make once its parts exist.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from quarry.settings import EmbeddingBackend, QuarrySettings, RetrievalSettings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from langchain_openai import ChatOpenAI

    from quarry.app.chain import ChatChain
    from quarry.app.retrieval import Reranker, Retriever
    from quarry.ingest.collection import Collection
    from quarry.ingest.embedding import Embedder
    from quarry.ingest.pipeline import ProgressCallback
    from quarry.ingest.report import IngestReport


class Components:
    """Quarry assembled from `settings`; every part is built on first use and then reused."""

    def __init__(self, settings: QuarrySettings, *, embedders: Sequence[Embedder] = ()) -> None:
        """`embedders`: models already loaded, used for collections built with them."""
        self.settings = settings
        self._embedders: dict[tuple[str, str], Embedder] = {
            (e.name, e.backend): e for e in embedders
        }
        self._collections: dict[str, Collection] = {}
        self._rerankers: dict[str, Reranker] = {}

    def with_settings(self, settings: QuarrySettings) -> Components:
        """Components for `settings` that reuse the parts already built here: for settings
        that differ in choices made per question (collection, top-k, temperature, the server's
        port), not in how Chroma or the embedding model are reached."""
        other = copy.copy(self)
        other.settings = settings
        return other

    @cached_property
    def chroma(self) -> ClientAPI:
        from quarry.ingest.collection import open_client

        return open_client(self.settings)

    def embedder(
        self, model: str | None = None, backend: EmbeddingBackend | None = None
    ) -> Embedder:
        """The embedding model `model` on `backend` (the configured ones by default), loaded
        lazily."""
        from quarry.ingest.embedding import Embedder

        conf = self.settings.embedding
        backend = backend or conf.backend
        if backend == "remote" and not conf.endpoint:
            backend = "torch"  # a collection embedded remotely, asked here: the same model
        key = (model or conf.model, backend)
        if key not in self._embedders:
            chosen = conf.model_copy(update={"model": key[0], "backend": key[1]})
            self._embedders[key] = Embedder.from_settings(chosen, self.settings.cache_dir)
        return self._embedders[key]

    def collection(self, name: str | None = None) -> Collection:
        """A collection (the configured one by default), existing or not."""
        from quarry.ingest.collection import Collection

        name = name or self.settings.ingest.collection
        if name not in self._collections:
            self._collections[name] = Collection.open(self.settings, name, self.chroma)
        return self._collections[name]

    def collection_embedder(self, name: str | None = None) -> Embedder:
        """The model and backend a collection was built with: its vectors compare with
        theirs. A collection that does not exist yet gets the configured ones."""
        collection = self.collection(name)
        return self.embedder(collection.model(), collection.backend())

    def reranker(self, model: str) -> Reranker:
        from quarry.app.retrieval import Reranker

        if model not in self._rerankers:
            self._rerankers[model] = Reranker(model)
        return self._rerankers[model]

    def retriever(
        self, collection: str | None = None, options: RetrievalSettings | None = None
    ) -> Retriever:
        """Hybrid search over `collection`; raises EmptyCollectionError when it does not
        exist yet (the message says how to add documents)."""
        from quarry.app.retrieval import EmptyCollectionError, Retriever

        target = self.collection(collection)
        if not target.exists():
            raise EmptyCollectionError(
                f'The collection "{target.name}" does not exist yet. Add documents with '
                f"`quarry ingest PATH --collection {target.name}` or the upload box."
            )
        options = options or self.settings.retrieval
        reranker = self.reranker(options.reranker) if options.reranker else None
        return Retriever(target, self.collection_embedder(target.name), options, reranker=reranker)

    def chat_model(self, *, temperature: float | None = None) -> ChatOpenAI:
        """The served model through LangChain; raises ConnectionError when the server is down."""
        from quarry.app.llm import chat_model, discover_model

        chat = self.settings.chat
        return chat_model(
            self.settings,
            discover_model(self.settings),
            temperature=chat.temperature if temperature is None else temperature,
            max_tokens=chat.max_tokens,
        )

    def chain(self, collection: str | None = None, *, warm: bool = True) -> ChatChain:
        """The chat chain against the running server and `collection`, warmed (see
        `ChatChain.warm`) unless told otherwise; raises ConnectionError if the server is down
        and EmptyCollectionError if the collection does not exist."""
        from quarry.app.budget import TokenCounter
        from quarry.app.chain import ChatChain
        from quarry.app.injection_classifier import InjectionClassifier

        llm = self.chat_model()  # a server that is down is the first thing to fix
        retriever = self.retriever(collection)
        server = self.settings.server
        counter = TokenCounter(server.base_url, llm.model_name, server.api_key)
        chain = ChatChain(
            llm,
            retriever,
            self.settings.chat,
            counter=counter,
            collection=retriever.collection.name,
            classifier=InjectionClassifier.from_settings(self.settings.screening),
        )
        if warm:
            chain.warm()
        return chain

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        embedder: Embedder | None = None,
        prune: bool = False,
        dry_run: bool = False,
        limit: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Bring the configured collection in line with `paths` (see `ingest.pipeline`), with
        the configured embedding model unless told otherwise, on the backend the collection
        was built with (a model other than the collection's is refused by the pipeline)."""
        from quarry.ingest.pipeline import ingest

        return ingest(
            paths,
            self.settings,
            embedder=embedder or self.embedder(backend=self.collection().backend()),
            client=self.chroma,
            prune=prune,
            dry_run=dry_run,
            limit=limit,
            on_progress=on_progress,
        )
