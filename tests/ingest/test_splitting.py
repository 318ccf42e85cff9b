"""Structure-aware, token-measured chunking (pure functions; only the tokenizer is loaded)."""

from __future__ import annotations

import itertools
import time

import pytest

from quarry.ingest.embedding import Embedder
from quarry.ingest.records import LoadedDocument, TextBlock
from quarry.ingest.splitting import (
    TokenSplitter,
    chunk_document,
    markdown_headings,
    rst_headings,
    sections,
)
from tests.ingest.conftest import MARKDOWN, RST


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return Embedder("sentence-transformers/all-MiniLM-L6-v2").tokenizer


def test_markdown_headings_skip_code_fences_and_read_setext() -> None:
    text = MARKDOWN + "\nSetext Title\n------------\n\nbody\n"
    titles = [(level, title) for _, level, title in markdown_headings(text)]
    assert titles == [(1, "Kitchen Handbook"), (2, "Knives"), (2, "Ovens"), (2, "Setext Title")]


def test_rst_heading_levels_follow_first_appearance_and_overlines() -> None:
    headings = rst_headings(RST)
    assert [(level, title) for _, level, title in headings] == [
        (1, "Sailing Primer"),
        (2, "Wind"),
        (3, "Knots"),
    ]
    assert headings[0][0] == 0  # the overline starts the section


def test_sections_carry_heading_paths() -> None:
    paths = [s.path for s in sections(RST, "rst")]
    assert paths == [
        ("Sailing Primer",),
        ("Sailing Primer", "Wind"),
        ("Sailing Primer", "Wind", "Knots"),
    ]


def _doc(text: str, markup: str = "plain") -> LoadedDocument:
    return LoadedDocument("t", markup, [TextBlock(text)])  # type: ignore[arg-type]


def test_chunks_fit_the_token_budget_with_exact_spans_and_overlap(tokenizer: object) -> None:
    splitter = TokenSplitter(tokenizer, 40, 10)
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(60))
    chunks = chunk_document(_doc(text), splitter)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert len(tokenizer(chunk.text, add_special_tokens=False)["input_ids"]) <= 40
        assert not chunk.text[0].isspace() and not chunk.text[-1].isspace()
    assert all(b.start < a.end for a, b in itertools.pairwise(chunks))  # overlap
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_small_sections_merge_under_their_common_heading(tokenizer: object) -> None:
    chunks = chunk_document(_doc(RST, "rst"), TokenSplitter(tokenizer, 200, 20))
    assert len(chunks) == 1
    assert chunks[0].heading_path == ("Sailing Primer",)
    split = chunk_document(_doc(RST, "rst"), TokenSplitter(tokenizer, 16, 2))
    assert ("Sailing Primer", "Wind", "Knots") in [c.heading_path for c in split]


def test_huge_single_line_is_split_fast(tokenizer: object) -> None:
    line = "lorem ipsum dolor sit amet " * 40_000  # about 1 MB, no newline
    started = time.monotonic()
    chunks = chunk_document(_doc(line), TokenSplitter(tokenizer, 200, 20))
    assert time.monotonic() - started < 10
    assert len(chunks) > 500
    assert max(c.tokens for c in chunks) <= 200


def test_overlong_word_does_not_become_one_giant_chunk(tokenizer: object) -> None:
    blob = "A" * 100_000  # base64-like: one [UNK] token to the model
    chunks = chunk_document(_doc(blob), TokenSplitter(tokenizer, 100, 10))
    assert len(chunks) > 10
    assert max(len(c.text) for c in chunks) <= 100 * 50


def test_overlap_must_be_below_size(tokenizer: object) -> None:
    with pytest.raises(ValueError):
        TokenSplitter(tokenizer, 10, 10)
