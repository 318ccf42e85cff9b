"""Typer commands for ingestion; `register(app)` adds them to the `quarry` CLI.

Exit codes: 0 success (skipped files allowed), 1 when any file failed or Chroma failed,
2 for usage errors (bad flags or settings, a collection built with another model),
130 when interrupted (every document is left whole; the next run finishes the work).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from quarry.console import console, err_console, fail, print_fields, settings_or_exit
from quarry.ingest.loaders import reading
from quarry.ingest.report import IngestReport
from quarry.settings import QuarrySettings

CollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="Collection name (default: quarry).")
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="sentence-transformers model name or path.")
]
PLAIN_PROGRESS_S = 60.0  # off a terminal, at most one progress line this often


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `ingest`, `collections` and `forget` to `app`, and `ingest` to its `bench` group."""
    app.command("ingest")(ingest_command)
    app.command("collections")(collections_command)
    app.command("forget")(forget_command)
    bench_app.command("ingest")(bench_ingest_command)


def _settings(
    collection: str | None = None,
    model: str | None = None,
    **ingest: Any,
) -> QuarrySettings:
    """Settings with the flags on top; a bad value exits 2 with the settings' own message."""
    return settings_or_exit(ingest={"collection": collection, **ingest}, embedding={"model": model})


class _IngestLog(logging.FileHandler):
    """Warnings libraries log during a run (pypdf's "EOF marker not found", Python warnings)
    go to `<data_dir>/logs/ingest.log` instead of above the report, each naming the file being
    read; the file is only created when something is logged, and `count` tells the summary."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.count = 0
        self.setLevel(logging.WARNING)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def format(self, record: logging.LogRecord) -> str:
        path = reading.get()
        return super().format(record) + (f" [reading {path}]" if path else "")

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """A log that cannot be written (a full disk) is given up on quietly: logging's own
        handler would print a traceback above the run's one-sentence error."""
        self.count -= 1


@contextmanager
def _ingest_log(settings: QuarrySettings) -> Iterator[_IngestLog]:
    """Library logging and warnings into the ingest log for the run; a handler on the root
    logger also keeps Python's last-resort handler from printing them on stderr."""
    handler = _IngestLog(settings.data_dir / "logs" / "ingest.log")
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield handler
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        handler.close()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill` stops a run as cleanly as Ctrl-C: the current document is finished or undone."""

    def handler(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    collection: CollectionOpt = None,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", help="Only files matching this glob (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Also skip files matching this glob (repeatable)."),
    ] = None,
    chunk_size: Annotated[
        int | None, typer.Option(help="Tokens per chunk (embedding model tokens).")
    ] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option(help="Tokens shared by neighbouring chunks.")
    ] = None,
    model: ModelOpt = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove chunks of files that no longer exist.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
) -> None:
    """Add documents to a collection, or bring it up to date (only changes are embedded)."""
    from quarry.components import Components
    from quarry.ingest.collection import StoreError
    from quarry.ingest.embedding import EmbeddingModelError
    from quarry.ingest.pipeline import IngestUsageError

    defaults = _settings().ingest if exclude else None
    settings = _settings(
        collection,
        model,
        include=include or None,
        exclude=[*defaults.exclude, *exclude] if defaults and exclude else None,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
    )
    try:
        with _ingest_log(settings) as log, _progress() as on_progress, _sigterm_as_interrupt():
            report = Components(settings).ingest(
                paths, prune=prune, dry_run=dry_run, on_progress=on_progress
            )
    except IngestUsageError as exc:
        raise fail(str(exc), 2) from None
    except (StoreError, EmbeddingModelError) as exc:
        raise fail(str(exc), 1) from None
    report.warnings_logged, report.log_path = log.count, log.baseFilename
    print_report(report)
    if report.interrupted:
        raise fail("Interrupted; every document is whole. Run again to finish.", 130)
    if report.failed:
        raise typer.Exit(1)


@contextmanager
def _progress() -> Iterator[Any]:
    """A bar with files done/total, chunks embedded and written, and embedding speed (on
    stderr); the counts move while a group of chunks is being embedded. Off a terminal Rich
    would draw nothing but a blank line: an occasional plain line instead."""
    if not err_console.is_terminal:
        yield _plain_progress()
        return
    columns = (
        TextColumn("[bold]Ingesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "files  {task.fields[embedded]} chunks embedded, {task.fields[chunks]} written  "
            "{task.fields[rate]:.1f} chunks/s"
        ),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("ingest", total=None, chunks=0, embedded=0, rate=0.0)

        def update(event: Any) -> None:
            rate = event.chunks_embedded / event.seconds if event.seconds > 0 else 0.0
            progress.update(
                task,
                total=event.files_total,
                completed=event.files_done,
                chunks=event.chunks_written,
                embedded=event.chunks_embedded,
                rate=rate,
            )

        yield update


def _plain_progress(every_s: float = PLAIN_PROGRESS_S) -> Callable[[Any], None]:
    """A line on stderr at most every `every_s` seconds: a long CI job shows it is alive
    without filling its log."""
    last = time.monotonic()

    def update(event: Any) -> None:
        nonlocal last
        if time.monotonic() - last < every_s:
            return
        last = time.monotonic()
        rate = event.chunks_embedded / event.seconds if event.seconds > 0 else 0.0
        print_fields(
            f"Ingesting: {event.files_done}/{event.files_total} files, {event.chunks_embedded} "
            f"chunks embedded, {event.chunks_written} written, {rate:.1f} chunks/s",
            out=err_console,
        )

    return update


def print_report(report: IngestReport) -> None:
    """A table on a terminal; off one (a log file, CI) one tab-separated line per file
    (status, path, reason), never wrapped, so every name can be searched."""
    if not console.is_terminal:
        for source, action in report.recovered:
            print_fields("recovered", source, action, out=console)
        for outcome in report.problems():
            print_fields(outcome.status, outcome.path, outcome.reason, out=console)
        print_fields(("Dry run " if report.dry_run else "") + report.summary(), out=console)
        return
    colours = {"failed": "red", "skipped": "yellow", "missing": "yellow", "pruned": "cyan"}
    for source, action in report.recovered:
        console.print(f"[cyan]recovered[/cyan] {source}: {action}")
    problems = report.problems()
    if problems:
        table = Table(title="Files needing attention", title_justify="left")
        table.add_column("Status")
        table.add_column("File", overflow="fold")
        table.add_column("Reason", overflow="fold")
        for outcome in problems:
            colour = colours.get(outcome.status, "green")
            table.add_row(f"[{colour}]{outcome.status}[/]", outcome.path, outcome.reason)
        console.print(table)
    prefix = "[bold]Dry run[/bold] " if report.dry_run else ""
    console.print(prefix + report.summary(), highlight=False)


def collections_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List collections with their document and chunk counts, model and last update."""
    import json
    from dataclasses import asdict

    from quarry.ingest.collection import StoreError, StoreLocation, list_collections, open_client

    settings = _settings()
    try:
        rows = list_collections(open_client(settings), StoreLocation.of(settings))
    except StoreError as exc:
        raise fail(str(exc), 1) from None
    if as_json:
        typer.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    if not rows:
        console.print("No collections yet. Add documents with `quarry ingest PATH`.")
        return
    table = Table()
    for column in ("Collection", "Documents", "Chunks", "Embedding model", "Last update"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            str(row.documents),
            str(row.chunks),
            row.embedding_model,
            row.updated_at or "-",
        )
    console.print(table)


def forget_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to remove (default: all).")
    ] = None,
    collection: Annotated[
        str, typer.Option("--collection", "-c", help="The collection to remove from.")
    ] = ...,  # type: ignore[assignment]
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove documents from a collection, or the whole collection when no PATH is given."""
    from quarry.ingest.collection import Collection, StoreError, writer_lock

    settings = _settings(collection)
    try:
        store = Collection.open(settings, collection)
        if not store.exists():
            raise fail(f"No collection named {collection!r} (see `quarry collections`).", 2)
        with writer_lock(settings):
            if not paths:
                what = f"the whole collection {collection!r}"
                _confirm(yes, what)
                store.drop()
                console.print(f"Removed {what}.")
                return
            targets = [p.absolute() for p in paths]
            doomed = [
                r
                for r in store.documents().values()
                if any(r.path == t or t in r.path.parents for t in targets)
            ]
            if not doomed:
                raise fail("No stored document is under " + ", ".join(map(str, paths)), 1)
            _confirm(yes, f"{len(doomed)} document(s) from {collection!r}")
            for record in doomed:
                store.remove(record)
                if console.is_terminal:
                    console.print(f"removed {record.source} ({record.chunks} chunks)")
                else:
                    print_fields("removed", record.source, f"{record.chunks} chunks", out=console)
            store.mark_updated()
            store.sync_keyword_index()
    except StoreError as exc:
        raise fail(str(exc), 1) from None


def _confirm(yes: bool, what: str) -> None:
    if not yes and not typer.confirm(f"Remove {what}?", default=False):
        raise fail("Nothing removed.", 1)


def bench_ingest_command(
    path: Annotated[Path, typer.Argument(help="A folder of documents.", exists=True)],
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Ingest only the first N files.")
    ] = None,
    model: ModelOpt = None,
) -> None:
    """The pipeline on each embedding backend beside bare PyTorch encode, with each
    backend's vectors compared with PyTorch's, then an unchanged re-run."""
    from quarry.ingest.bench import MIN_COSINE, bench_ingest

    settings = _settings(model=model)
    with err_console.status("Benchmarking ingestion on each backend..."):
        result = bench_ingest(path, settings, limit=limit)
    torch = result.run("torch")
    files = f"{result.files}" + (f" ({result.failed} failed)" if result.failed else "")
    console.print(
        f"[bold]quarry bench ingest {path}[/bold]: {files} files, {result.chunks} chunks; "
        f"bare PyTorch encode {result.encode_rate:.1f} chunks/s ({result.encode_s:.1f} s)"
    )
    table = Table(title_justify="left")
    for column in ("Backend", "Pipeline", "Chunks/s", "x PyTorch", "x bare", "Min cos",
                   f"< {MIN_COSINE}"):  # fmt: skip
        table.add_column(column, justify="left" if column == "Backend" else "right")
    for run in result.runs:
        table.add_row(
            run.backend + ("*" if run.backend == result.default else ""),
            f"{run.pipeline_s:.1f} s",
            f"{run.rate:.1f}",
            f"{run.rate / torch.rate:.2f}" if torch.rate else "-",
            f"{run.rate / result.encode_rate:.2f}" if result.encode_rate else "-",
            f"{run.min_cosine:.4f}",
            "[green]0[/green]" if run.passes else f"[red]{run.below_gate}[/red]",
        )
    console.print(table)
    prepared = ", ".join(f"{r.backend} {r.prepare_s:.1f} s" for r in result.runs)
    console.print(
        f"* the default. x PyTorch: the PyTorch pipeline's chunks/s; x bare: bare encode's. "
        f"Min cos: the least similar chunk vector to PyTorch's; < {MIN_COSINE}: chunks "
        f"failing the quality gate. Loading and export, before the clocks: {prepared}."
    )
    default = result.run(result.default)
    if default.rerun_s is not None and default.pipeline_s:
        console.print(
            f"Unchanged re-run ({result.default}): {default.rerun_s:.2f} s, "
            f"{default.rerun_s / default.pipeline_s:.3f} of the first run (target <= 0.05)"
        )
