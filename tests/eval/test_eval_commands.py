"""`quarry eval` end to end: the sample collection, real embeddings, the real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quarry.app.retrieval import Retriever
from quarry.cli import app
from quarry.eval.cli import SHIPPED_QA
from quarry.settings import QuarrySettings
from tests.conftest import SAMPLE, RunningServer

runner = CliRunner()


@pytest.fixture
def sample_env(
    monkeypatch: pytest.MonkeyPatch, sample_settings: QuarrySettings, sample_retriever: Retriever
) -> None:
    monkeypatch.setenv("QUARRY_DATA_DIR", str(sample_settings.data_dir))


def test_retrieval_report_compares_k_values(sample_env: None, tmp_path: Path) -> None:
    args = ["eval", "retrieval", "-c", SAMPLE, "--k", "4,8", "--output", str(tmp_path)]
    result = runner.invoke(app, [*args, "--min-hit-at-5", "0.8"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval-retrieval.json").read_text())
    assert set(data) == {"k=4", "k=8"}
    summary = data["k=4"]["summary"]
    assert summary["hit_at_5"] >= 0.8 and summary["mrr_at_10"] > 0.5
    assert summary["abstained_when_unanswerable"] == 1.0
    assert summary["latency_p95_ms"] >= summary["latency_p50_ms"] > 0
    assert "| hit_at_5 |" in (tmp_path / "eval-retrieval.md").read_text()


def test_a_missed_threshold_fails_the_run(sample_env: None, tmp_path: Path) -> None:
    args = ["eval", "retrieval", "-c", SAMPLE, "--k", "4", "--output", str(tmp_path)]
    result = runner.invoke(app, [*args, "--min-hit-at-5", "1.01"])
    assert result.exit_code == 1
    assert "Below the threshold (k=4): hit_at_5" in result.output


def test_bad_inputs_are_usage_errors(sample_env: None, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    for args, message in [
        (["-c", SAMPLE, "--qa", str(bad)], "bad.jsonl:1: question: Field required"),
        (["-c", "absent-collection"], 'The collection "absent-collection" does not exist yet'),
        (["-c", SAMPLE, "--k", "four"], "retrieval.top_k: Input should be a valid integer"),
        (["-c", SAMPLE, "--compare", "hybrid=0,1"], "'hybrid=0,1': give SETTING=V1,V2"),
        (["-c", SAMPLE, "--compare", "hybrid_weight=2"], "retrieval.hybrid_weight: Input"),
    ]:
        result = runner.invoke(app, ["eval", "retrieval", *args])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split())


@pytest.mark.server
def test_answers_report_on_the_real_server(
    sample_env: None,
    vllm_server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("QUARRY_SERVER_PORT", str(vllm_server.settings.server.port))
    monkeypatch.setenv("QUARRY_CHAT_MAX_TOKENS", "64")
    subset = tmp_path / "subset.jsonl"
    lines = SHIPPED_QA.read_text().splitlines()
    subset.write_text("\n".join([lines[0], lines[7], lines[-1]]) + "\n")  # 2 answerable, 1 not
    result = runner.invoke(
        app, ["eval", "answers", "-c", SAMPLE, "--qa", str(subset), "--output", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval-answers.json").read_text())
    assert [q["id"] for q in data["questions"]] == ["server-port", "stop", "none-taxes"]
    refused = {q["id"]: q["refused"] for q in data["questions"]}
    assert refused == {"server-port": False, "stop": False, "none-taxes": True}
    assert data["summary"]["refusal_accuracy"] == 1.0
    assert data["summary"]["ttft_p50_s"] > 0
    assert all(q["answer"] for q in data["questions"])
