"""The store failing under Quarry for real: a Chroma server down or SIGKILLed during an ingest
and during questions, a disk that fills up mid-ingest, two processes writing one embedded
store, and a damaged keyword index.

What the user sees must be one sentence that says what happened and what to do, never a
traceback; what was stored before the fault must stay whole and readable; and the next run
(or the same question again) must finish the work once the fault is gone.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import chromadb
import pytest

from quarry.app.errors import SERVER_DOWN, explain
from quarry.app.session import add_uploads, describe
from quarry.components import Components
from quarry.eval.server_metrics import free_port
from quarry.ingest.collection import Collection, StoreUnavailableError, keyword_folder
from quarry.ingest.embedding import Embedder
from quarry.ingest.keyword_index import KeywordIndex
from quarry.ingest.pipeline import ingest
from quarry.settings import QuarrySettings, load_settings
from tests.faults.conftest import (
    CLI_TIMEOUT_S,
    COLLECTION,
    Chroma,
    cli_env,
    one_sentence,
    quarry,
    quarry_argv,
    resize,
    used_kib,
    whole_documents,
    write_long_notes,
    write_notes,
)
from tests.ingest.conftest import assert_consistent

pytestmark = pytest.mark.heavy

NOTES = 120  # one chunk each; embedded one at a time, so a run takes seconds to write


def settings_for(data_dir: Path, chroma: Chroma | None = None) -> QuarrySettings:
    """This process's view of the store the CLI writes (same collection, sizes, backend)."""
    server = {"host": "127.0.0.1", "port": chroma.port} if chroma else {}
    return load_settings(
        data_dir=data_dir,
        chroma=server,
        ingest={"collection": COLLECTION, "chunk_size": 64, "chunk_overlap": 8},
        embedding={"backend": "torch"},
    )


def wait_for(condition: Callable[[], bool], what: str, run: subprocess.Popen[str]) -> None:
    """Until `condition` holds while `run` is still going; a clear failure if it ends first."""
    deadline = time.monotonic() + CLI_TIMEOUT_S
    while not condition():
        if run.poll() is not None:
            out, err = run.communicate()
            pytest.fail(f"the run ended before {what}; use a bigger corpus:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {CLI_TIMEOUT_S} s")
        time.sleep(0.05)


def manifest_written(client: chromadb.api.ClientAPI) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return client.get_collection(COLLECTION + "__documents").count() > 0
        except Exception:  # not created yet
            return False

    return check


# -- 1. the Chroma server down at the start of an ingest, then killed in the middle ------------


def test_chroma_down_then_killed_mid_ingest_then_the_next_run_finishes(tmp_path: Path) -> None:
    docs = write_notes(tmp_path / "docs", NOTES)
    chroma = Chroma(tmp_path / "chroma" / "data", free_port())
    env = cli_env(tmp_path / "data", chroma, QUARRY_EMBEDDING_BATCH_SIZE="1")
    try:
        down = quarry("ingest", docs, env=env)
        assert down.returncode == 1, down.stderr
        said = one_sentence(down.stderr)
        assert said.startswith(f"No Chroma server answers at {chroma.url}. Start it"), said

        chroma.start()
        watcher = chromadb.HttpClient(host="127.0.0.1", port=chroma.port)
        run = subprocess.Popen(
            quarry_argv("ingest", docs), env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_for(manifest_written(watcher), "the first write", run)
            chroma.kill()  # as the first group's documents are being written
            _, err = run.communicate(timeout=CLI_TIMEOUT_S)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 1, err
        said = one_sentence(err)
        assert said.startswith(f"The Chroma server at {chroma.url} is not answering"), said
        assert "Start it again" in said and "every document stored so far is whole" in said

        chroma.start()  # the same data folder and port
        store = Collection.open(settings_for(tmp_path / "data", chroma), COLLECTION)
        before = whole_documents(store)  # committed documents are whole, even now
        assert len(store.documents()) < NOTES, "the kill landed after the run"

        again = quarry("ingest", docs, env=env)
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stdout + again.stderr
        assert_consistent(store)
        records = store.documents()
        assert sorted(r.source for r in records.values()) == sorted(p.name for p in docs.iterdir())
        assert store.count() == sum(r.chunks for r in records.values()) == NOTES  # no duplicate
        unchanged = re.search(r"(\d+) unchanged", again.stdout)
        assert unchanged and int(unchanged.group(1)) >= len(before), again.stdout
    finally:
        chroma.stop()


# -- 2. the Chroma server killed while questions are being answered ---------------------------


def test_chroma_killed_mid_question_is_one_sentence_then_the_retry_answers(
    tmp_path: Path, embedder: Embedder
) -> None:
    chroma = Chroma(tmp_path / "chroma" / "data", free_port()).start()
    try:
        settings = settings_for(tmp_path / "data", chroma)
        assert not ingest([write_notes(tmp_path / "docs", 12)], settings, embedder=embedder).failed
        retriever = Components(settings, embedders=[embedder]).retriever(COLLECTION)
        question = ["The harbour log entry note3 records what?"]
        answered: list[int] = []
        failures: list[BaseException] = []

        def ask() -> None:  # the page's and the API's searches, one after another
            while len(answered) < 10_000:
                try:
                    retriever.search_many(question, 3)
                except Exception as exc:
                    failures.append(exc)
                    return
                answered.append(1)

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        deadline = time.monotonic() + 60
        while len(answered) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        chroma.kill()  # with questions in flight
        asking.join(60)
        assert failures, "no question met the dead server"
        assert isinstance(failures[0], StoreUnavailableError), repr(failures[0])

        problem = explain(failures[0])  # the API's error body
        assert problem.text.startswith(f"The Chroma server at {chroma.url} is not answering")
        assert "Start it again, then retry" in problem.text
        assert (problem.status, problem.code) == (503, "store_error")
        assert problem.text != SERVER_DOWN and not problem.text.startswith("Something went")
        assert describe(failures[0]).text == problem.text  # the page says the same

        chroma.start()  # the same data folder and port: the same retriever answers again
        passages = retriever.search_many(question, 3)
        assert passages and passages[0].source == "note-003.md"
    finally:
        chroma.stop()


# -- 3. the disk filling up during an ingest --------------------------------------------------


def test_disk_full_mid_ingest_keeps_what_was_stored_and_the_next_run_finishes(
    tmp_path: Path, tmpfs: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmpfs)  # the store on the small disk
    first = write_notes(tmp_path / "docs" / "first", 5)
    (first / "codes.md").write_text("# Error codes\n\nThe flag QX7731 means the gauge is off.\n")
    assert not ingest([tmp_path / "docs"], settings, embedder=embedder).failed
    stored = whole_documents(Collection.open(settings, COLLECTION))
    assert len(stored) == 6
    write_long_notes(tmp_path / "docs" / "more", 4)  # about 120 chunks: beyond the room
    resize(tmpfs, used_kib(tmpfs) + 400)

    env = cli_env(tmpfs)
    full = quarry("ingest", tmp_path / "docs", env=env)
    assert full.returncode == 1, full.stderr
    said = one_sentence(full.stderr)
    assert said.startswith(f"No space left on device while writing {tmpfs}"), said
    assert "Free some space and run again; every document stored so far is whole." in said

    store = Collection.open(settings, COLLECTION)
    after = whole_documents(store)
    assert {s: n for s, n in after.items() if s in stored} == stored  # intact, readable
    filler = fill(tmpfs)  # not a byte left: the stale keyword index cannot be saved
    retriever = Components(settings, embedders=[embedder]).retriever(COLLECTION)
    with caplog.at_level(logging.WARNING, logger="quarry.ingest.collection"):
        passages = retriever.search("What does the flag QX7731 mean?", 3)
    assert "not saved" in caplog.text  # rebuilt in memory, and searched all the same
    assert passages and passages[0].source == "first/codes.md"
    filler.unlink()

    resize(tmpfs, 64 * 1024)  # room again
    again = quarry("ingest", tmp_path / "docs", env=env)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stdout + again.stderr
    store = Collection.open(settings, COLLECTION)
    assert_consistent(store)
    assert len(store.documents()) == 10


def fill(mount: Path) -> Path:
    """Write a file until the disk refuses another byte (ENOSPC), as another program would."""
    filler = mount / "filler"
    handle = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        block = b"\0" * 2**16
        while True:
            try:
                os.write(handle, block if len(block) > 1 else b"\0")
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                if len(block) == 1:
                    return filler
                block = block[: len(block) // 2]  # the last few bytes too
    finally:
        os.close(handle)


# -- 5. an upload from the page while `quarry ingest` writes the same embedded store -----------


class Upload:
    """What the page's code reads of Streamlit's UploadedFile."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data, self.size = name, data, len(data)

    def getvalue(self) -> bytes:
        return self.data


def holds_lock(lock: Path, pid: int) -> bool:
    """Whether process `pid` holds an flock on `lock` (read from /proc/locks, taking none)."""
    try:
        inode = lock.stat().st_ino
    except FileNotFoundError:
        return False
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[4] == str(pid):  # noqa: SIM102
            if fields[5].rsplit(":", 1)[-1] == str(inode):  # maj:min:inode
                return True
    return False


def test_upload_while_the_cli_writes_the_same_store_is_serialised(
    tmp_path: Path, embedder: Embedder
) -> None:
    data = tmp_path / "data"
    docs = write_notes(tmp_path / "docs", NOTES)
    settings = settings_for(data)
    parts = Components(settings, embedders=[embedder])  # the page's parts
    upload = Upload("lighthouse.md", b"# Lighthouse\n\nThe keeper lights the lamp at dusk.\n")
    env = cli_env(data, QUARRY_EMBEDDING_BATCH_SIZE="1")
    run = subprocess.Popen(
        quarry_argv("ingest", docs), env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        lock = data / "chroma" / ".quarry-writer.lock"
        wait_for(lambda: holds_lock(lock, run.pid), "the writer lock", run)
        report, problems = add_uploads(parts, [upload])
        out, err = run.communicate(timeout=CLI_TIMEOUT_S)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    assert "Traceback" not in out + err
    if problems:  # the CLI still held the store: the page says so, and what to do
        assert report is None
        assert len(problems) == 1, problems
        assert problems[0].startswith(f"Another Quarry process is writing to {data / 'chroma'}")
        assert "wait for it to finish and try again" in problems[0]
        report, problems = add_uploads(parts, [upload])  # the user tries again
    assert not problems, problems
    assert report is not None and report.counts()["added"] == 1

    store = Collection.open(settings, COLLECTION)
    assert_consistent(store)
    sources = sorted(r.source for r in store.documents().values())
    assert sources == sorted([*(p.name for p in docs.iterdir()), "lighthouse.md"])


# -- 6. a damaged keyword index --------------------------------------------------------------


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) // 2],
    "garbled": lambda data: bytes(b ^ 0x5A for b in data),
    "emptied": lambda data: b"",
}


def test_a_damaged_keyword_index_is_rebuilt_by_the_next_search(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = settings_for(tmp_path / "data")
    docs = write_notes(tmp_path / "docs", 8)
    (docs / "codes.md").write_text("# Error codes\n\nThe flag QX7731 means the gauge is offline.\n")
    assert not ingest([docs], settings, embedder=embedder).failed
    folder = keyword_folder(settings) / COLLECTION
    names = sorted(p.name for p in folder.iterdir())
    assert "stamp.json" in names and "ids.json" in names
    question = "What does the flag QX7731 mean?"
    for name in names:
        for how, damage in DAMAGE.items():
            target = folder / name
            target.write_bytes(damage(target.read_bytes()))
            parts = Components(settings, embedders=[embedder])  # a new process: none in memory
            hits = parts.collection(COLLECTION).keyword_search("QX7731", 3)
            assert hits and hits[0].chunk_id.startswith(_doc_id(parts, "codes.md")), (name, how)
            passages = parts.retriever(COLLECTION).search(question, 3)
            assert passages and passages[0].source == "codes.md", (name, how)
            assert KeywordIndex(folder.parent, COLLECTION).load(), f"{name} {how}: not rebuilt"
    (folder / "ids.json").unlink()
    parts = Components(settings, embedders=[embedder])
    assert parts.retriever(COLLECTION).search(question, 3)[0].source == "codes.md"


def _doc_id(parts: Components, source: str) -> str:
    return next(d for d, s in parts.collection(COLLECTION).sources().items() if s == source)
