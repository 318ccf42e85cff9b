"""The commands as a user runs them: exit codes and messages (Typer's CliRunner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from quarry.cli import app as quarry_app
from quarry.ingest import pipeline
from quarry.ingest.embedding import Embedder
from quarry.settings import QuarrySettings
from tests.ingest.conftest import write_corpus


@pytest.fixture
def app(
    monkeypatch: pytest.MonkeyPatch, settings: QuarrySettings, embedder: Embedder
) -> typer.Typer:
    """A tiny app with the ingestion commands; settings come from the environment like a
    user's, and the session's loaded model is reused."""
    monkeypatch.setenv("QUARRY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("QUARRY_INGEST_COLLECTION", settings.ingest.collection)
    monkeypatch.setenv("QUARRY_INGEST_CHUNK_SIZE", "64")
    monkeypatch.setenv("QUARRY_INGEST_CHUNK_OVERLAP", "8")
    monkeypatch.setenv("QUARRY_EMBEDDING_BACKEND", embedder.backend)
    if settings.chroma.host:
        monkeypatch.setenv("QUARRY_CHROMA_HOST", settings.chroma.host)
        monkeypatch.setenv("QUARRY_CHROMA_PORT", str(settings.chroma.port))
    real = pipeline.Embedder.from_settings

    def shared(conf: Any, cache_dir: Any = None) -> Embedder:
        same = (conf.model, conf.backend) == (embedder.name, embedder.backend)
        return embedder if same else real(conf, cache_dir)

    monkeypatch.setattr(pipeline.Embedder, "from_settings", shared)
    return quarry_app


runner = CliRunner()


def test_ingest_then_collections_then_forget(app: typer.Typer, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    result = runner.invoke(app, ["ingest", str(docs)])
    assert result.exit_code == 0, result.output
    assert "6 added" in result.output and "chunks written" in result.output
    again = runner.invoke(app, ["ingest", str(docs)])
    assert again.exit_code == 0 and "6 unchanged" in again.output
    listing = runner.invoke(app, ["collections", "--json"])
    assert listing.exit_code == 0
    assert '"documents": 6' in listing.output
    assert "all-MiniLM-L6-v2" in listing.output
    refused = runner.invoke(
        app, ["forget", "--collection", _name(), str(docs / "bees.html")], input="n\n"
    )
    assert refused.exit_code == 1 and "Nothing removed" in refused.output
    forgot = runner.invoke(app, ["forget", "-c", _name(), "--yes", str(docs / "bees.html")])
    assert forgot.exit_code == 0 and "removed bees.html" in forgot.output
    whole = runner.invoke(app, ["forget", "-c", _name()], input="y\n")
    assert whole.exit_code == 0 and "Removed the whole collection" in whole.output
    assert runner.invoke(app, ["forget", "-c", _name(), "-y"]).exit_code == 2


def _name() -> str:
    import os

    return os.environ["QUARRY_INGEST_COLLECTION"]


def test_a_failed_file_exits_1_with_its_reason(app: typer.Typer, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("# Fine\n\nFine text.\n")
    (docs / "broken.pdf").write_bytes(b"not a pdf at all")
    result = runner.invoke(app, ["ingest", str(docs)], terminal_width=200)
    assert result.exit_code == 1
    assert "broken.pdf" in result.output and "corrupt or unreadable PDF" in result.output
    assert "1 added" in result.output and "1 failed" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chunk-size", "32", "--chunk-overlap", "32"], "must be smaller than"),
        (["--chunk-size", "1000"], "exceeds what"),
        (["--collection", "no spaces allowed"], "ingest.collection"),
    ],
)
def test_usage_errors_exit_2(
    app: typer.Typer, tmp_path: Path, args: list[str], message: str
) -> None:
    docs = write_corpus(tmp_path / "docs")
    result = runner.invoke(app, ["ingest", str(docs), *args], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_dry_run_and_exclude(app: typer.Typer, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    result = runner.invoke(
        app, ["ingest", str(docs), "--dry-run", "--exclude", "*.pdf", "--exclude", "*.docx"]
    )
    assert result.exit_code == 0, result.output
    assert "Dry run" in result.output and "4 added" in result.output
