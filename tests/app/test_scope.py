"""Questions limited to some documents: the scope itself, then search over a real collection."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from quarry.app.chain import Answer, ChatChain
from quarry.app.retrieval import Retriever
from quarry.app.scope import Scope, ScopeError, scope_options
from quarry.components import Components
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.settings import load_settings


def test_a_scope_covers_its_files_and_what_lies_under_its_folders() -> None:
    scope = Scope.of(["contracts/2024/", "./notes.md", "  ", "contracts/2024/"])
    assert scope is not None and scope.paths == ("contracts/2024/", "notes.md")
    assert scope.covers("contracts/2024/lease.md") and scope.covers("notes.md")
    assert not scope.covers("contracts/2023/lease.md")
    assert not scope.covers("contracts/2024-draft.md")  # a folder prefix is a whole folder
    assert Scope.of(["contracts"]) == Scope(("contracts",))
    assert Scope.of(["contracts"]).covers("contracts/2024/lease.md")  # type: ignore[union-attr]
    assert Scope.of([]) is None and Scope.of(None) is None


def test_a_scope_that_covers_nothing_names_what_exists() -> None:
    sources = {"a": "contracts/2024/lease.md", "b": "notes.md"}
    assert Scope(("notes.md",)).documents(sources, "legal") == {"b"}
    with pytest.raises(ScopeError, match=r'"legal" is under invoices/\..*contracts/2024/'):
        Scope(("invoices/",)).documents(sources, "legal")


def test_options_list_every_folder_then_every_file() -> None:
    assert scope_options(["contracts/2024/lease.md", "notes.md", "contracts/2023/lease.md"]) == [
        "contracts/",
        "contracts/2023/",
        "contracts/2024/",
        "contracts/2023/lease.md",
        "contracts/2024/lease.md",
        "notes.md",
    ]


LEASE_2024 = """# Office lease 2024

The 2024 office lease runs for three years. The rent is paid monthly to Harbour Estates.
"""
LEASE_2023 = """# Office lease 2023

The 2023 office lease carried the Zanzibar clause: a penalty of ten thousand euros for
leaving early. The rent was paid monthly to Harbour Estates.
"""
NOTES = "Meeting notes: the Zanzibar clause was dropped when the lease was renewed.\n"


@pytest.fixture(scope="module")
def legal(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Retriever:
    root = tmp_path_factory.mktemp("legal")
    for rel, text in {
        "contracts/2024/lease.md": LEASE_2024,
        "contracts/2023/lease.md": LEASE_2023,
        "notes.md": NOTES,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    settings = load_settings(
        profile="cpu",
        data_dir=tmp_path_factory.mktemp("legal-data"),
        ingest={"collection": "legal"},
        retrieval={"min_score": 0.0},
    )
    assert not ingest([root], settings, embedder=embedder).failed
    return Components(settings, embedders=[embedder]).retriever("legal")


def test_dense_and_keyword_search_see_only_the_scope(legal: Retriever) -> None:
    question = "What did the Zanzibar clause cost?"
    assert "contracts/2023/lease.md" in {p.source for p in legal.search(question, 3)}
    scoped = legal.within(Scope.of(["contracts/2024/"]))
    assert {p.source for p in scoped.search(question, 3)} == {"contracts/2024/lease.md"}
    doc_ids = scoped._doc_ids
    assert doc_ids is not None
    hits = legal.collection.keyword_search("Zanzibar clause", 5, doc_ids)
    assert hits == []  # BM25 alone: the word is in two documents, neither in the scope
    both = legal.collection.keyword_search("Zanzibar clause", 5)
    assert len(both) == 2
    assert legal.within(None).search(question, 3) == legal.search(question, 3)


def test_a_scoped_question_without_an_answer_says_it_searched_only_the_scope(
    legal: Retriever,
) -> None:
    strict = load_settings(profile="cpu", retrieval={"min_score": 0.99}).retrieval
    retriever = Retriever(legal.collection, legal.embedder, strict)
    never_called = ChatOpenAI(base_url="http://127.0.0.1:9/v1", api_key=SecretStr("x"), model="m")
    chat = load_settings(profile="cpu").chat
    chain = ChatChain(never_called, retriever, chat, collection="legal")
    *_, done = chain.stream("Zanzibar?", scope=Scope.of(["contracts/2024/"]))
    assert isinstance(done, Answer) and done.refused
    assert 'collection "legal", searching only contracts/2024/' in done.text
