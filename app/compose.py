"""The composition root: a ready chat chain from settings, and nothing read from globals."""

from __future__ import annotations

from quarry.app.budget import TokenCounter
from quarry.app.chain import ChatChain
from quarry.app.injection_classifier import InjectionClassifier
from quarry.app.llm import chat_model, discover_model
from quarry.app.retrieval import Retriever
from quarry.ingest.embedding import Embedder
from quarry.settings import QuarrySettings


def build_chain(
    settings: QuarrySettings, collection: str, *, embedder: Embedder | None = None
) -> ChatChain:
    """Chain against the running server and `collection`, warmed (see `ChatChain.warm`);
    raises ConnectionError if the server is down and EmptyCollectionError if the collection
    does not exist."""
    model = discover_model(settings)
    chat = settings.chat
    llm = chat_model(settings, model, temperature=chat.temperature, max_tokens=chat.max_tokens)
    retriever = Retriever.from_settings(settings, collection, embedder=embedder)
    counter = TokenCounter(settings.server.base_url, model, settings.server.api_key)
    classifier = InjectionClassifier.from_settings(settings.screening)  # None unless configured
    chain = ChatChain(
        llm, retriever, chat, counter=counter, collection=collection, classifier=classifier
    )
    chain.warm()
    return chain
