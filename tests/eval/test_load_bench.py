"""`quarry bench load` against a real vLLM server through a real `quarry api` process."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from quarry.cli import app
from quarry.eval.load_bench import QUARRY, SERVER, markdown_report, run_load, write_reports
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.settings import load_settings
from tests.conftest import DOCS, RunningServer


def test_levels_must_be_counts() -> None:
    result = CliRunner().invoke(app, ["bench", "load", "--levels", "1,four"])
    assert result.exit_code == 2 and "give counts like 1,4,16" in result.output


@pytest.mark.server
def test_concurrent_conversations_through_the_api_beside_vllm_alone(
    tmp_path: Path, vllm_server: RunningServer, embedder: Embedder
) -> None:
    server = vllm_server.settings.server
    settings = load_settings(
        profile="cpu",
        data_dir=tmp_path / "data",
        server=server.model_dump(include={"port", "max_model_len", "kv_cache_space_gib"}),
        ingest={"collection": "quarry-docs"},
    )
    assert not ingest([DOCS], settings, embedder=embedder).failed
    report = run_load(
        settings,
        collection="quarry-docs",
        server_model=vllm_server.model,
        levels=(1, 3),
        turns=2,
        rounds=2,
        max_tokens=16,
        page_sessions=2,
        log_dir=tmp_path / "reports",
    )
    assert report.errors == 0, markdown_report(report)
    assert [(r.round, r.target, r.concurrency) for r in report.levels] == [
        (round_, target, n) for round_ in (1, 2) for n in (1, 3) for target in (QUARRY, SERVER)
    ]
    quarry = [r for r in report.levels if r.target == QUARRY]
    assert [r.requests for r in quarry] == [2, 6, 2, 6]  # two turns per conversation
    assert all(0 < r.ttft_p50_s <= r.total_p50_s for r in report.levels)
    assert [t.process for t in report.memory] == [QUARRY, "model server"]
    assert all(t.pids and len(t.mib) == 3 and min(t.mib) > 50 for t in report.memory)
    if report.page_skipped:
        pytest.skip(f"the page part needs a browser: {report.page_skipped}")
    assert [(run.sessions, run.complete) for run in report.page] == [(1, 1), (2, 2)]
    assert all(0 < run.shown_ttft_p50_s < run.answer_p50_s for run in report.page)
    json_path, md_path = write_reports(report, tmp_path / "reports")
    assert '"errors": 0' in json_path.read_text()
    assert "| 2 | quarry api | 3 | 6 | 0 |" in md_path.read_text()
    assert "| 2 | 2 of 2 |" in md_path.read_text()
