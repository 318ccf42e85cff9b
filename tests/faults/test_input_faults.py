"""Hostile input, for real: files deleted, rewritten or replaced by a named pipe while a run
reads them, and a broken quarry.toml.

A file that changes under a run is either reported with a reason or stored as one version
that matches its stored hash; the rest of the run is stored; the next run picks up the final
state. A broken config stops every command with one sentence and exit code 2.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from quarry.ingest.collection import Collection
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import Progress, ProgressCallback, ingest
from quarry.settings import QuarrySettings, load_settings
from tests.faults.conftest import COLLECTION, cli_env, one_sentence, quarry, write_notes
from tests.ingest.conftest import assert_consistent

FIFO_UNBLOCK_S = 60  # if the run opened the pipe after all, a writer ends the wait by then


@pytest.fixture
def settings(tmp_path: Path) -> QuarrySettings:
    return load_settings(
        data_dir=tmp_path / "data",
        ingest={"collection": COLLECTION, "chunk_size": 64, "chunk_overlap": 8},
        embedding={"backend": "torch"},
    )


def stored_text(store: Collection, source: str) -> str:
    got = store.chunks_collection().get(where={"source": source}, include=["documents"])
    return " ".join(got["documents"] or [])


def when_planned(action: Callable[[], object]) -> ProgressCallback:
    """A progress callback that acts once, on the run's first event: the first file's outcome
    while planning (`b-*` files are unchanged), after `a-victim.md` was found and hashed and
    before it is read, which happens only once every file is planned."""
    fired = threading.Event()

    def on_progress(event: Progress) -> None:
        if not fired.is_set():
            fired.set()
            action()

    return on_progress


# -- 4. a file changed or deleted while it is being ingested ----------------------------------


def test_file_deleted_between_planning_and_reading_is_reported(
    tmp_path: Path, settings: QuarrySettings, embedder: Embedder
) -> None:
    docs = write_notes(tmp_path / "docs", 3, prefix="b")
    assert not ingest([docs], settings, embedder=embedder).failed
    victim = docs / "a-victim.md"
    victim.write_text("# Victim\n\nThis file is deleted while the run is under way.\n")
    (docs / "c-new.md").write_text("# New\n\nThe ferry leaves at noon.\n")

    report = ingest([docs], settings, embedder=embedder, on_progress=when_planned(victim.unlink))
    lines = {o.path: (o.status, o.reason) for o in report.outcomes}
    assert lines["a-victim.md"] == (
        "failed",
        "deleted or moved during the run; the next run sees where it went",
    )
    assert lines["c-new.md"][0] == "added"  # the rest is stored
    store = Collection.open(settings, COLLECTION)
    assert_consistent(store)
    assert "a-victim.md" not in store.sources().values()

    again = ingest([docs], settings, embedder=embedder)
    assert not again.failed and again.counts()["unchanged"] == 4
    assert_consistent(store)


def test_file_rewritten_between_planning_and_reading_stores_what_was_read(
    tmp_path: Path, settings: QuarrySettings, embedder: Embedder
) -> None:
    docs = write_notes(tmp_path / "docs", 3, prefix="b")
    victim = docs / "a-victim.md"
    victim.write_text("# Tides\n\nThe old table says high tide at six.\n")
    assert not ingest([docs], settings, embedder=embedder).failed
    victim.write_text("# Tides\n\nThe second table says high tide at seven.\n")
    final = "# Tides\n\nThe final table says high tide at nine.\n"

    rewrite = when_planned(lambda: victim.write_text(final))
    report = ingest([docs], settings, embedder=embedder, on_progress=rewrite)
    assert not report.failed
    store = Collection.open(settings, COLLECTION)
    assert_consistent(store)
    text = stored_text(store, "a-victim.md")
    assert "high tide at nine" in text and "seven" not in text and "six" not in text
    record = next(r for r in store.documents().values() if r.source == "a-victim.md")
    assert record.doc_hash == hashlib.sha256(final.encode()).hexdigest()  # what was read

    again = ingest([docs], settings, embedder=embedder)
    assert again.counts()["unchanged"] == 4 and again.chunks_written == 0


def test_file_rewritten_over_and_over_during_the_run_then_the_final_state(
    tmp_path: Path, settings: QuarrySettings, embedder: Embedder
) -> None:
    """A real race: a writer thread rewrites a 1 MB file in place, without pause, for the whole
    run; whatever the run read (a whole revision, or a torn one) is stored consistently or
    reported, and the next run stores the last revision."""
    docs = write_notes(tmp_path / "docs", 3, prefix="b")
    big = docs / "big.txt"
    padding = "\n" * 2**20
    revision = [0]
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            revision[0] += 1
            with big.open("w") as handle:  # truncate, then write: readers may see a part
                handle.write(padding + f"Revision {revision[0]} of the tide table.\n")

    big.write_text(padding + "Revision 0 of the tide table.\n")
    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    try:
        report = ingest([docs], settings, embedder=embedder)
    finally:
        stop.set()
        writer.join(10)
    assert revision[0] > 1, "the writer never ran during the run"
    outcome = next(o for o in report.outcomes if o.path == "big.txt")
    assert outcome.status in ("added", "skipped", "failed"), outcome
    assert outcome.status == "added" or outcome.reason, outcome
    store = Collection.open(settings, COLLECTION)
    assert_consistent(store)
    assert {"b-000.md", "b-001.md", "b-002.md"} <= set(store.sources().values())
    if outcome.status == "added":
        assert stored_text(store, "big.txt").startswith("Revision ")  # one revision, whole

    again = ingest([docs], settings, embedder=embedder)
    assert not again.failed
    assert_consistent(store)
    assert stored_text(store, "big.txt") == f"Revision {revision[0]} of the tide table."


def test_a_named_pipe_among_the_files_is_reported_not_waited_on(
    tmp_path: Path, settings: QuarrySettings, embedder: Embedder
) -> None:
    docs = write_notes(tmp_path / "docs", 2, prefix="b")
    pipe = docs / "a-pipe.md"
    os.mkfifo(pipe)
    unblock = threading.Timer(FIFO_UNBLOCK_S, lambda: os.close(os.open(pipe, os.O_WRONLY)))
    unblock.daemon = True
    unblock.start()  # bounds the test if the run did open the pipe (it would wait forever)
    try:
        report = ingest([docs], settings, embedder=embedder)
    finally:
        unblock.cancel()
    lines = {o.path: (o.status, o.reason) for o in report.outcomes}
    assert lines["a-pipe.md"] == ("failed", "not a regular file (a pipe or a device)")
    assert report.counts()["added"] == 2
    assert_consistent(Collection.open(settings, COLLECTION))


# -- 7. a malformed quarry.toml ---------------------------------------------------------------


BROKEN = {
    "syntax": ('[chroma]\nport = 8000\nhost = "unclosed\n', "line 3", "is not valid TOML"),
    "type": ('[chroma]\nport = "eighty"\n', "line 2", "chroma.port: Input should be a valid"),
    "unknown": ("[ingest]\nchunk_sise = 128\n", "line 2", "ingest.chunk_sise: Extra inputs"),
}
COMMANDS = {
    "ingest": ["ingest", "docs"],
    "api": ["api"],
    "collections": ["collections"],
}


@pytest.mark.heavy
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_a_broken_quarry_toml_is_one_sentence_and_exit_2(
    tmp_path: Path, command: str, broken: str
) -> None:
    text, line, problem = BROKEN[broken]
    config = tmp_path / "quarry.toml"
    config.write_text(text)
    write_notes(tmp_path / "docs", 1)
    env = cli_env(tmp_path / "data")
    done = quarry(*COMMANDS[command], env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    said = one_sentence(done.stderr)
    assert str(config) in said and line in said and problem in said, said
    assert "Fix" in said, said  # and what to do
    assert not (tmp_path / "data" / "chroma").exists()  # nothing was touched
