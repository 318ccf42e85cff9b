"""Retrieval and the tools over a real collection (real embeddings, real Chroma)."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.utils.function_calling import convert_to_openai_tool

from quarry.app.retrieval import EmptyCollectionError, Retriever
from quarry.app.tools import TOOLS, PassageRegistry, parse_arguments, run_tool_call, tool_schemas
from quarry.components import Components
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.settings import QuarrySettings, load_settings


def test_the_relevant_document_comes_first(sample_retriever: Retriever) -> None:
    passages = sample_retriever.search("How do I change the port of the model server?", 4)
    assert passages[0].source == "configuration.md"
    assert passages[0].score >= sample_retriever.min_score


@pytest.mark.parametrize(
    "question",
    ["What is the boiling point of tungsten?", "Who won the 1998 football world cup?"],
)
def test_unrelated_questions_find_nothing(sample_retriever: Retriever, question: str) -> None:
    assert sample_retriever.search(question, 4) == []


def test_neighbours_come_in_document_order(sample_retriever: Retriever) -> None:
    anchor = sample_retriever.search("Temperature presets factual creative", 1)[0]
    around = sample_retriever.neighbours(anchor, radius=1)
    assert {p.source for p in around} == {anchor.source}
    assert anchor.doc_id and {p.doc_id for p in around} == {anchor.doc_id}
    assert anchor.chunk_id in [p.chunk_id for p in around]
    assert [p.chunk_index for p in around] == sorted(p.chunk_index for p in around)


def test_a_missing_collection_says_how_to_fill_it(
    sample_settings: QuarrySettings, embedder: Embedder
) -> None:
    with pytest.raises(EmptyCollectionError, match="quarry ingest PATH --collection nothing-here"):
        Components(sample_settings, embedders=[embedder]).retriever("nothing-here")


def test_tool_schemas_describe_their_arguments() -> None:
    schemas = {tool["name"]: tool["parameters"] for tool in tool_schemas()}
    assert set(schemas) == set(TOOLS) == {"search_documents", "read_more"}
    assert set(schemas["search_documents"]["properties"]) == {"query", "k"}
    assert schemas["search_documents"]["required"] == ["query"]
    assert set(schemas["read_more"]["properties"]) == {"passage", "radius"}
    assert schemas["read_more"]["required"] == ["passage"]
    strict = convert_to_openai_tool(tool_schemas()[0], strict=True)["function"]
    assert strict["strict"] and strict["parameters"]["additionalProperties"] is False


def test_arguments_as_a_json_string_are_accepted() -> None:
    assert parse_arguments('{"query": "ports", "k": 2}') == {"query": "ports", "k": 2}
    with pytest.raises(ValueError, match="must be a JSON object, got str"):
        parse_arguments('"search_document_a"')
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_arguments("{query: ports")


def test_search_tool_numbers_new_passages_after_the_given_ones(
    sample_retriever: Retriever,
) -> None:
    registry = PassageRegistry()
    first = sample_retriever.search("How do I stop Quarry?", 1)[0]
    assert registry.number(first) == 1
    result = run_tool_call(
        {"name": "search_documents", "args": {"query": "chat page port", "k": 2}},
        sample_retriever,
        registry,
    )
    assert result.startswith("[2] ") or result.startswith("[1] ")
    assert len(registry.passages) >= 2
    assert registry.number(first) == 1  # a passage keeps its number


def test_read_more_returns_the_surrounding_text(sample_retriever: Retriever) -> None:
    registry = PassageRegistry()
    registry.number(sample_retriever.search("Temperature presets factual creative", 1)[0])
    result = run_tool_call(
        {"name": "read_more", "args": {"passage": 1, "radius": 1}}, sample_retriever, registry
    )
    assert "chat.md" in result


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ({"name": "search_documents", "args": {"k": 3}}, "query: Field required"),
        ({"name": "search_documents", "args": {"query": "x", "k": 99}}, "k: Input should be"),
        ({"name": "search_documents", "args": '"search_document_a"'}, "must be a JSON object"),
        ({"name": "read_more", "args": {"passage": 5}}, "passage: there is no passage [5]"),
        ({"name": "delete_everything", "args": {}}, "there is no tool 'delete_everything'"),
    ],
)
def test_malformed_calls_become_messages_to_the_model(
    sample_retriever: Retriever, call: dict[str, object], error: str
) -> None:
    result = run_tool_call(call, sample_retriever, PassageRegistry())
    assert result.startswith("Error:")
    assert error in result


def test_reading_more_stays_in_the_document_when_two_roots_share_a_name(
    tmp_path: Path, embedder: Embedder
) -> None:
    for root, topic in (("team-a", "granite"), ("team-b", "marble")):
        (tmp_path / root).mkdir()
        (tmp_path / root / "README.md").write_text(
            f"# {topic.title()}\n\n"
            + "\n\n".join(f"Paragraph {i} is about {topic} blocks." * 12 for i in range(4))
        )
    settings = load_settings(
        profile="cpu", data_dir=tmp_path / "data", ingest={"collection": "two-roots"}
    )
    ingest([tmp_path / "team-a", tmp_path / "team-b"], settings, embedder=embedder)
    retriever = Components(settings, embedders=[embedder]).retriever("two-roots")
    anchor = retriever.search("granite blocks", 1)[0]
    around = retriever.neighbours(anchor, radius=2)
    assert len({p.chunk_index for p in around}) == len(around)  # one document's chunks
    assert all("granite" in p.text and "marble" not in p.text for p in around)
