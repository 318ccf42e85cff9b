"""The commands as a user runs them: exit codes and messages (Typer's CliRunner, whose
output is not a terminal), and the real `quarry` command with its output in a file or pipe."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from quarry.cli import app as quarry_app
from quarry.ingest import cli as ingest_cli
from quarry.ingest import pipeline
from quarry.ingest.embedding import Embedder
from quarry.settings import QuarrySettings
from tests.ingest.conftest import make_pdf, write_corpus


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
    assert forgot.exit_code == 0 and "removed\tbees.html\t" in forgot.output
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


# -- output that is not a terminal: the real command, its stdout in a file --------------

QUARRY = Path(sys.executable).parent / "quarry"
LONG = "a-folder-name-long-enough-that-the-report-table-would-fold-it-at-eighty-columns"
BOX_DRAWING = re.compile("[\u2500-\u257f]")


def _quarry(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """`quarry ARGS` in a child process with stdout in a file and stderr in a pipe, neither
    a terminal; an embedded store under `tmp_path`, so it runs once, not per Chroma mode."""
    child_env = {
        **os.environ,
        "QUARRY_DATA_DIR": str(tmp_path / "data"),
        "QUARRY_INGEST_COLLECTION": f"plain-{uuid.uuid4().hex[:8]}",
        "QUARRY_INGEST_CHUNK_SIZE": "64",
        "QUARRY_INGEST_CHUNK_OVERLAP": "8",
        **env,
    }
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        if name not in env:
            child_env.pop(name, None)
    out = tmp_path / f"stdout-{uuid.uuid4().hex[:6]}.txt"
    with out.open("wb") as stdout:
        child = subprocess.run(
            [str(QUARRY), *args], env=child_env, stdout=stdout, stderr=subprocess.PIPE, timeout=300
        )
    return child.returncode, out.read_text(), child.stderr.decode()


def _damaged_docs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A good file, a truncated PDF deep under a long folder name (pypdf warns "EOF marker
    not found" on it), and a long path that does not exist."""
    docs = tmp_path / "docs"
    (docs / LONG).mkdir(parents=True)
    (docs / "ok.md").write_text("# Fine\n\nFine text about quarries.\n")
    whole = make_pdf(tmp_path / "whole.pdf", ["Saturn has rings of ice.", "Mars has two moons."])
    pdf = docs / LONG / "truncated-report-from-the-scanner.pdf"
    pdf.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return docs, pdf, tmp_path / LONG / "does-not-exist.md"


def test_off_a_terminal_the_report_is_one_line_per_file(tmp_path: Path) -> None:
    docs, pdf, missing = _damaged_docs(tmp_path)
    code, out, err = _quarry(tmp_path, "ingest", str(docs), str(missing))
    assert code == 1, out + err
    lines = out.splitlines()
    rel = f"{LONG}/{pdf.name}"
    assert len(f"failed {rel} corrupt or unreadable PDF") > 80  # a table would fold it
    assert ["failed", str(missing), "path does not exist"] in [x.split("\t") for x in lines]
    (pdf_line,) = [line for line in lines if rel in line]
    status, path, reason = pdf_line.split("\t")
    assert (status, path) == ("failed", rel)
    assert reason.startswith("corrupt or unreadable PDF (")
    assert not BOX_DRAWING.search(out) and "\x1b" not in out + err
    assert "EOF marker" not in out + err and "pypdf" not in out + err
    assert err == ""  # no progress bar remains, not even a blank line
    log = tmp_path / "data" / "logs" / "ingest.log"
    summary = lines[-1]
    assert re.fullmatch(
        rf"plain-\S+: 1 added, 0 unchanged, 2 failed; .*; \d+ warning\(s\) logged to {log}",
        summary,
    ), summary
    logged = log.read_text()
    assert "WARNING pypdf" in logged and "EOF marker not found" in logged
    assert f"[reading {pdf}]" in logged
    collection = summary.split(":")[0]
    code, out, err = _quarry(tmp_path, "forget", "-c", collection, "--yes", str(docs / "ok.md"))
    assert (code, out, err) == (0, "removed\tok.md\t1 chunks\n", ""), out + err


@pytest.mark.parametrize("env", [{"FORCE_COLOR": "1"}, {"TTY_COMPATIBLE": "1"}])
def test_a_forced_terminal_gets_the_table(tmp_path: Path, env: dict[str, str]) -> None:
    """Rich's own switches make a file count as a terminal (a dry run: no model to load)."""
    docs, _, missing = _damaged_docs(tmp_path)
    code, out, err = _quarry(tmp_path, "ingest", "--dry-run", str(docs), str(missing), **env)
    assert code == 1, out + err
    assert "Files needing attention" in out and BOX_DRAWING.search(out)
    assert "\t" not in out


def test_off_a_terminal_progress_is_an_occasional_plain_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(ingest_cli, "err_console", Console(file=stderr))
    event = pipeline.Progress(
        files_done=3, files_total=10, chunks_written=40, chunks_embedded=50, seconds=2.0
    )
    ingest_cli._plain_progress(every_s=3600)(event)
    assert stderr.getvalue() == ""
    ingest_cli._plain_progress(every_s=0)(event)
    assert stderr.getvalue() == (
        "Ingesting: 3/10 files, 50 chunks embedded, 40 written, 25.0 chunks/s\n"
    )
