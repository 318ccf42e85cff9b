"""Question sets: the documented format, clear errors, and the shipped set."""

from __future__ import annotations

from pathlib import Path

import pytest

from quarry.eval.cli import SHIPPED_QA
from quarry.eval.qa import QaSetError, load_qa

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_shipped_set_points_at_real_documents() -> None:
    items = load_qa(SHIPPED_QA)
    assert len(items) >= 20
    assert sum(not i.answerable for i in items) >= 5
    for item in items:
        for source in item.expected_sources:
            assert (DOCS / source).is_file(), f"{item.id}: {source} is not in docs/"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('{"id": "a", "question": "q", "expected_sources": "x.md"}', r":1: expected_sources"),
        ('{"id": "a"}', r":1: question: Field required"),
        ('{"id": "a", "question": "q", "answr": "typo"}', r":1: answr: Extra inputs"),
        ("{not json", r":1: not valid JSON"),
    ],
)
def test_a_bad_line_names_the_file_line_and_field(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(QaSetError, match=error):
        load_qa(path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "a", "question": "q"}\n\n{"id": "a", "question": "r"}\n')
    with pytest.raises(QaSetError, match=r"set.jsonl:3: id 'a' is used twice"):
        load_qa(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(QaSetError, match="no such question set"):
        load_qa(tmp_path / "nope.jsonl")
