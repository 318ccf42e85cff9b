"""Typer commands for ingestion; `register(app)` adds them to the `quarry` CLI.

Exit codes: 0 success (skipped files allowed), 1 when any file failed or Chroma failed,
2 for usage errors (bad flags or settings, a collection built with another model),
130 when interrupted (every document is left whole; the next run finishes the work).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from quarry.console import console, err_console, fail, settings_or_exit
from quarry.ingest.report import IngestReport
from quarry.settings import QuarrySettings

CollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="Collection name (default: quarry).")
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="sentence-transformers model name or path.")
]


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
        with _progress() as on_progress, _sigterm_as_interrupt():
            report = Components(settings).ingest(
                paths, prune=prune, dry_run=dry_run, on_progress=on_progress
            )
    except IngestUsageError as exc:
        raise fail(str(exc), 2) from None
    except (StoreError, EmbeddingModelError) as exc:
        raise fail(str(exc), 1) from None
    print_report(report)
    if report.interrupted:
        raise fail("Interrupted; every document is whole. Run again to finish.", 130)
    if report.failed:
        raise typer.Exit(1)


@contextmanager
def _progress() -> Iterator[Any]:
    """A bar with files done/total, chunks embedded and written, and embedding speed (on
    stderr); the counts move while a group of chunks is being embedded."""
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


def print_report(report: IngestReport) -> None:
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

    from quarry.ingest.collection import StoreError, list_collections, open_client

    settings = _settings()
    try:
        rows = list_collections(open_client(settings))
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
                console.print(f"removed {record.source} ({record.chunks} chunks)")
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
