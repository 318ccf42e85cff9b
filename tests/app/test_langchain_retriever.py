"""Quarry's hybrid retriever inside a small LangChain chain: real Chroma, embeddings, vLLM."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from quarry.app.langchain_retriever import QuarryRetriever
from quarry.app.llm import chat_model, discover_model
from quarry.app.retrieval import Retriever
from quarry.settings import QuarrySettings
from tests.conftest import SAMPLE, RunningServer

PORT_QUESTION = "How do I change the port of the model server?"


def test_documents_carry_the_passage_and_where_it_is(sample_retriever: Retriever) -> None:
    docs = QuarryRetriever(searcher=sample_retriever, k=3).invoke(PORT_QUESTION)
    assert len(docs) == 3 and docs[0].metadata["source"] == "configuration.md"
    assert docs[0].page_content and docs[0].id
    assert {"title", "heading", "page", "label", "score"} <= set(docs[0].metadata)
    assert QuarryRetriever(searcher=sample_retriever).invoke("boiling point of tungsten") == []


def test_for_collection_uses_quarrys_settings_and_scope(
    sample_retriever: Retriever, sample_settings: QuarrySettings
) -> None:
    scoped = QuarryRetriever.for_collection(
        SAMPLE, k=4, scope=["chat.md"], settings=sample_settings
    ).invoke("What do the temperature presets do?")
    assert scoped and {d.metadata["source"] for d in scoped} == {"chat.md"}


@pytest.mark.server
def test_the_retriever_inside_a_langchain_chain(
    sample_retriever: Retriever, vllm_server: RunningServer
) -> None:
    settings = vllm_server.settings
    llm = chat_model(settings, discover_model(settings), temperature=0, max_tokens=60)
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Answer from the context only.\n\nContext:\n{context}"),
            ("human", "{question}"),
        ]
    )

    def joined(docs: list[Document]) -> str:
        return "\n\n".join(f"[{d.metadata['label']}]\n{d.page_content}" for d in docs)

    retriever = QuarryRetriever(searcher=sample_retriever, k=2)
    chain = (
        {"context": retriever | joined, "question": RunnablePassthrough()}
        | prompt
        | llm
        | StrOutputParser()
    )
    answer = chain.invoke(PORT_QUESTION)
    assert isinstance(answer, str) and answer.strip()
    assert "port" in answer.lower()
