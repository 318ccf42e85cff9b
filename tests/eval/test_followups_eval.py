"""`quarry eval followups`: the multi-turn sets, and follow-ups searched on the real sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quarry.app.retrieval import Retriever
from quarry.cli import app
from quarry.eval.cli import SHIPPED_FOLLOWUPS
from quarry.eval.followups_eval import STRATEGIES, evaluate
from quarry.eval.qa import QaSetError, load_conversations
from quarry.settings import QuarrySettings
from tests.conftest import SAMPLE

runner = CliRunner()

SHIPPED_SETS = [SHIPPED_FOLLOWUPS, SHIPPED_FOLLOWUPS.with_name("followups-peps.jsonl")]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _turn(question: str, standalone: str | None = None, **extra: object) -> dict[str, object]:
    return {"question": question, "standalone": standalone or question, **extra}


def _line(id: str, *turns: dict[str, object]) -> str:
    return json.dumps({"id": id, "turns": list(turns)})


GOOD = _line(
    "port",
    _turn("How do I change the port?", expected_sources=["configuration.md"], facts=["--port"]),
    _turn("and the chat page?", "How do I change the chat page's port?"),
)


@pytest.fixture
def sample_env(
    monkeypatch: pytest.MonkeyPatch, sample_settings: QuarrySettings, sample_retriever: Retriever
) -> None:
    monkeypatch.setenv("QUARRY_DATA_DIR", str(sample_settings.data_dir))


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(GOOD + "\n\n// a comment\n" + GOOD.replace('"port"', '"port-2"') + "\n")
    conversations = load_conversations(path)
    assert [c.id for c in conversations] == ["port", "port-2"]
    first, second = conversations[0].turns
    assert first.expected_sources == ["configuration.md"] and first.facts == ["--port"]
    assert second.standalone == "How do I change the chat page's port?"
    assert second.expected_sources == [] and not second.answerable


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (_line("a", _turn("q"), {"question": "r"}), r"set.jsonl:2: turns.1.standalone: Field req"),
        (_line("a", _turn("q"), _turn("r", typo=1)), r"set.jsonl:2: turns.1.typo: Extra inputs"),
        (json.dumps({"turns": [_turn("q"), _turn("r")]}), r"set.jsonl:2: id: Field required"),
        (_line("a", _turn("q")), r"set.jsonl:2: turns: List should have at least 2 items"),
        (_line("a", _turn("q", "other"), _turn("r")), r"set.jsonl:2: turns.0.standalone: the f"),
        ("{not json", r"set.jsonl:2: not valid JSON"),
    ],
)
def test_a_bad_line_names_the_file_line_and_field(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(GOOD.replace('"port"', '"first"') + "\n" + line + "\n")
    with pytest.raises(QaSetError, match=error):
        load_conversations(path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(GOOD + "\n" + GOOD + "\n")
    with pytest.raises(QaSetError, match=r"set.jsonl:2: id 'port' is used twice"):
        load_conversations(path)


def test_a_missing_or_empty_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(QaSetError, match=r"nope\.jsonl: no such conversation set"):
        load_conversations(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(QaSetError, match=r"empty\.jsonl: no conversations"):
        load_conversations(tmp_path / "empty.jsonl")


def test_the_shipped_sets_load() -> None:
    conversations = [c for path in SHIPPED_SETS for c in load_conversations(path)]
    assert len(conversations) >= 30
    assert len({c.id for c in conversations}) == len(conversations)
    for conversation in conversations:
        assert 2 <= len(conversation.turns) <= 4, conversation.id
        assert all(t.answerable for t in conversation.turns), conversation.id
    for conversation in load_conversations(SHIPPED_FOLLOWUPS):
        for turn in conversation.turns:
            for source in turn.expected_sources:
                assert (DOCS / source).is_file(), f"{conversation.id}: {source} not in docs/"


def test_followups_searched_with_their_context_beat_them_alone(
    sample_retriever: Retriever,
) -> None:
    conversations = load_conversations(SHIPPED_FOLLOWUPS)
    report = evaluate(sample_retriever, conversations, 5)
    summary = report.summary()
    strategies = summary["strategies"]
    assert isinstance(strategies, dict) and set(strategies) == set(STRATEGIES)
    assert summary["conversations"] == len(conversations)
    assert summary["followup_turns"] == sum(len(c.turns) - 1 for c in conversations)
    assert strategies["followup"]["hit_at_5"] >= strategies["alone"]["hit_at_5"]
    assert strategies["followup"]["mrr_at_5"] >= strategies["alone"]["mrr_at_5"]
    first_turns = summary["first_turns"]
    assert isinstance(first_turns, dict) and first_turns["turns"] == len(conversations)
    assert all(len(t.retrieved[s]) <= 5 for t in report.turns for s in STRATEGIES)


def test_the_command_writes_reports_and_gates_the_gap(sample_env: None, tmp_path: Path) -> None:
    subset = tmp_path / "subset.jsonl"
    subset.write_text("\n".join(SHIPPED_FOLLOWUPS.read_text().splitlines()[:3]) + "\n")
    args = ["eval", "followups", "-c", SAMPLE, "--qa", str(subset), "--output", str(tmp_path)]
    result = runner.invoke(app, [*args, "--k", "3", "--max-gap", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval-followups.json").read_text())
    assert data["summary"]["k"] == 3 and data["summary"]["conversations"] == 3
    assert set(data["summary"]["strategies"]["followup"]) == {"hit_at_1", "hit_at_3", "mrr_at_3"}
    row = next(t for t in data["turns"] if t["turn"] == 2)
    assert set(row["retrieved"]) == set(STRATEGIES) and set(row["hits"]) == set(STRATEGIES)
    assert row["conversation"] and row["question"] and row["expected"]
    assert "| strategy | hit@1 | hit@3 | MRR@3 |" in (tmp_path / "eval-followups.md").read_text()
    # The gap is at least -1: a negative limit is always exceeded.
    result = runner.invoke(app, [*args, "--max-gap", "-1.5"])
    assert result.exit_code == 1
    assert "Above the threshold (followups): standalone hit@5 minus followup hit@5" in " ".join(
        result.output.split()
    )


def test_bad_inputs_are_usage_errors(sample_env: None, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_line("x", _turn("q"), {"question": "r"}) + "\n")
    for args, message in [
        (["-c", SAMPLE, "--qa", str(bad)], "bad.jsonl:1: turns.1.standalone: Field required"),
        (["-c", SAMPLE, "--qa", str(tmp_path / "nope.jsonl")], "no such conversation set"),
        (["-c", "absent-collection"], 'The collection "absent-collection" does not exist yet'),
    ]:
        result = runner.invoke(app, ["eval", "followups", *args, "--output", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split())
    assert not (tmp_path / "eval-followups.json").exists()
