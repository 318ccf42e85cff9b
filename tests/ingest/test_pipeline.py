"""End to end against real files, real embeddings and real Chroma (embedded and server)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quarry.ingest import pipeline
from quarry.ingest.collection import Collection, DocumentWrite
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import IngestUsageError, ingest
from quarry.ingest.report import IngestReport
from tests.ingest.conftest import (
    assert_consistent,
    make_encrypted_pdf,
    make_pdf,
    write_corpus,
)

Run = Callable[..., IngestReport]


def _statuses(report: IngestReport) -> dict[str, tuple[str, str]]:
    return {Path(o.path).name: (o.status, o.reason) for o in report.outcomes}


def _chunks(store: Collection, **where: Any) -> list[dict[str, Any]]:
    got = store.chunks_collection().get(where=where or None, include=["metadatas"])
    return sorted(got["metadatas"], key=lambda m: (m["source"], m["chunk_index"]))


@pytest.fixture
def no_encoding(monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> None:
    """Any call to the model fails the test: the run must reuse what is stored."""

    def refuse(texts: list[str]) -> list[list[float]]:
        raise AssertionError(f"embedded {len(texts)} texts")

    monkeypatch.setattr(embedder, "encode", refuse)


def test_every_format_with_full_metadata(
    tmp_path: Path, run: Run, store: Collection, embedder: Embedder
) -> None:
    report = run(write_corpus(tmp_path / "docs"))
    assert report.counts()["added"] == 6 and not report.failed
    metas = _chunks(store)
    assert {m["source"] for m in metas} == {
        "kitchen.md",
        "notes.txt",
        "sailing.rst",
        "bees.html",
        "garden.docx",
        "astronomy.pdf",
    }
    for meta in metas:
        for key in (
            "title",
            "heading_path",
            "chunk_index",
            "start",
            "end",
            "content_hash",
            "doc_hash",
            "embedding_model",
            "root",
            "tokens",
        ):
            assert key in meta
        assert meta["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
        assert meta["root"] == str(tmp_path / "docs")
    pdf = _chunks(store, source="astronomy.pdf")
    assert [(m["page"], m["title"]) for m in pdf] == [(1, "astronomy"), (2, "astronomy")]
    assert {m["heading_path"] for m in _chunks(store, source="kitchen.md")} >= {"Kitchen Handbook"}
    assert _chunks(store, source="garden.docx")[0]["title"] == "Quarterly Garden Report"
    assert _chunks(store, source="bees.html")[0]["title"] == "Bee Keeping"
    got = store.chunks_collection().get(where={"source": "sailing.rst"}, include=["documents"])
    assert "bowline" in " ".join(got["documents"])
    hits = store.chunks_collection().query(
        query_embeddings=embedder.encode(["How many moons does Mars have?"]),
        n_results=1,
    )
    assert hits["metadatas"][0][0]["source"] == "astronomy.pdf"
    assert hits["metadatas"][0][0]["page"] == 2
    assert_consistent(store)


def test_bad_inputs_are_reported_and_the_run_continues(
    tmp_path: Path, run: Run, store: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Good\n\nA perfectly normal document about owls.\n")
    (docs / "empty.txt").write_text("")
    (docs / "binary.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(200))
    (docs / "legacy.txt").write_bytes("Ça coûte très cher, déjà vu.\n".encode("cp1252") * 4)
    make_encrypted_pdf(docs / "locked.pdf")
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf")
    (docs / "oneline.txt").write_text("token " * 3000)  # a long single line
    (docs / "secret.md").write_text("# Secret\n\nUnreadable.\n")
    (docs / "copy-of-good.md").write_text((docs / "good.md").read_text())
    (docs / "loop").symlink_to(docs, target_is_directory=True)
    (docs / "image.png").write_bytes(b"\x89PNG")
    if os.geteuid() == 0:  # root reads anything: make this one file refuse like chmod 000 would
        real_read = Path.read_bytes

        def read_bytes(path: Path) -> bytes:
            if path.name == "secret.md":
                raise PermissionError(13, "Permission denied", str(path))
            return real_read(path)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    else:
        (docs / "secret.md").chmod(0)
    report = run(docs, tmp_path / "does-not-exist")
    lines = _statuses(report)
    assert lines["copy-of-good.md"][0] == "added"  # sorted first, so it is the kept copy
    assert lines["good.md"] == ("skipped", "same content as copy-of-good.md")
    assert lines["legacy.txt"] == ("added", "not UTF-8; decoded as cp1252")
    assert lines["oneline.txt"][0] == "added"
    assert lines["empty.txt"] == ("skipped", "empty file")
    assert lines["binary.txt"] == ("failed", "binary content (NUL bytes), not text")
    assert lines["locked.pdf"] == ("failed", "encrypted PDF (needs a password)")
    assert lines["corrupt.pdf"][0] == "failed" and "corrupt" in lines["corrupt.pdf"][1]
    assert lines["secret.md"] == ("failed", "permission denied")
    assert lines["loop"] == ("failed", "symbolic link loop; not followed")
    assert lines["image.png"] == ("skipped", "unsupported format (.png)")
    assert lines["does-not-exist"] == ("failed", "path does not exist")
    assert report.failed
    assert max(m["tokens"] for m in _chunks(store)) <= 64
    assert_consistent(store)


def test_unchanged_rerun_embeds_and_writes_nothing(
    tmp_path: Path, run: Run, store: Collection, request: pytest.FixtureRequest
) -> None:
    docs = write_corpus(tmp_path / "docs")
    first = run(docs)
    ids = set(store.chunks_collection().get(include=[])["ids"])
    request.getfixturevalue("no_encoding")
    os.utime(docs / "kitchen.md")  # new time, same content: re-hashed, still unchanged
    second = run(docs)
    assert second.counts()["unchanged"] == 6 and second.chunks_written == 0
    assert set(store.chunks_collection().get(include=[])["ids"]) == ids
    assert first.chunks_written == len(ids)


def test_chunk_ids_are_deterministic(
    tmp_path: Path, embedder: Embedder, settings_factory: Callable[..., Any]
) -> None:
    docs = write_corpus(tmp_path / "docs")
    ids = []
    for _ in range(2):
        settings = settings_factory()
        settings.ingest.collection += f"-{len(ids)}"
        ingest([docs], settings, embedder=embedder)
        collection = Collection.open(settings, settings.ingest.collection)
        ids.append(set(collection.chunks_collection().get()["ids"]))
    assert ids[0] == ids[1] and ids[0]


def test_embedding_headings_reembeds_and_keeps_the_passages(
    tmp_path: Path, run: Run, store: Collection, settings_factory: Callable[..., Any]
) -> None:
    docs = write_corpus(tmp_path / "docs")
    run(docs, settings=settings_factory(embed_headings=False))
    plain = store.chunks_collection().get(include=["documents", "embeddings", "metadatas"])
    report = run(docs)  # the default embeds where each chunk is
    assert report.counts()["updated"] == 6  # another embedded text: new chunk versions
    placed = store.chunks_collection().get(include=["documents", "embeddings", "metadatas"])
    assert sorted(placed["documents"]) == sorted(plain["documents"])  # what the model reads
    by_text = {
        t: np.asarray(v) for t, v in zip(plain["documents"], plain["embeddings"], strict=True)
    }
    headed = [
        t for t, v, m in zip(placed["documents"], placed["embeddings"], placed["metadatas"],
                             strict=True)
        if m["heading_path"] and not np.allclose(v, by_text[t], atol=1e-6)
    ]  # fmt: skip
    assert headed  # chunks under a heading were embedded with it
    assert_consistent(store)


def test_changed_file_replaces_its_chunks(tmp_path: Path, run: Run, store: Collection) -> None:
    docs = write_corpus(tmp_path / "docs")
    run(docs)
    before = {m["doc_hash"] for m in _chunks(store, source="notes.txt")}
    (docs / "notes.txt").write_text("Plain notes: the library now opens at ten on Sundays.\n")
    report = run(docs)
    assert _statuses(report)["notes.txt"][0] == "updated"
    after = _chunks(store, source="notes.txt")
    assert len(after) == 1 and {m["doc_hash"] for m in after}.isdisjoint(before)
    got = store.chunks_collection().get(where={"source": "notes.txt"}, include=["documents"])
    assert got["documents"] == ["Plain notes: the library now opens at ten on Sundays."]
    assert_consistent(store)


def test_deleted_file_goes_only_with_prune(tmp_path: Path, run: Run, store: Collection) -> None:
    docs = write_corpus(tmp_path / "docs")
    run(docs)
    (docs / "bees.html").unlink()
    kept = run(docs)
    assert _statuses(kept)["bees.html"][0] == "missing"
    assert _chunks(store, source="bees.html")
    dry = run(docs, prune=True, dry_run=True)
    assert _statuses(dry)["bees.html"][0] == "pruned" and _chunks(store, source="bees.html")
    pruned = run(docs, prune=True)
    assert _statuses(pruned)["bees.html"][0] == "pruned"
    assert not _chunks(store, source="bees.html")
    assert_consistent(store)


def test_moved_file_is_not_embedded_again(
    tmp_path: Path, run: Run, store: Collection, request: pytest.FixtureRequest
) -> None:
    docs = write_corpus(tmp_path / "docs")
    run(docs)
    vectors = store.chunks_collection().get(where={"source": "sailing.rst"}, include=["embeddings"])
    (docs / "archive").mkdir()
    shutil.move(docs / "sailing.rst", docs / "archive" / "sailing-2024.rst")
    request.getfixturevalue("no_encoding")
    report = run(docs)
    assert _statuses(report)["sailing-2024.rst"][0] == "moved"
    assert not _chunks(store, source="sailing.rst")
    moved = store.chunks_collection().get(
        where={"source": "archive/sailing-2024.rst"}, include=["embeddings"]
    )
    assert len(moved["ids"]) == len(vectors["ids"])
    assert (moved["embeddings"] == vectors["embeddings"]).all()
    assert_consistent(store)


def test_dry_run_writes_nothing(tmp_path: Path, run: Run, store: Collection) -> None:
    report = run(write_corpus(tmp_path / "docs"), dry_run=True)
    assert report.counts()["added"] == 6 and report.chunks_written == 0
    assert not store.exists()


def test_other_model_and_oversized_chunks_are_refused(
    tmp_path: Path, run: Run, settings_factory: Callable[..., Any], embedder: Embedder
) -> None:
    docs = write_corpus(tmp_path / "docs")
    run(docs)
    other = Embedder("some-org/other-model")
    other.__dict__["max_tokens"] = 510
    other.__dict__["tokenizer"] = embedder.tokenizer
    with pytest.raises(IngestUsageError, match="holds embeddings of"):
        ingest([docs], settings_factory(), embedder=other)
    with pytest.raises(IngestUsageError, match="exceeds"):
        run(docs, settings=settings_factory(chunk_size=400, chunk_overlap=10))


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing in the pipeline catches it."""


def test_interrupted_write_is_completed_or_undone_next_run(
    tmp_path: Path, run: Run, store: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = write_corpus(tmp_path / "docs")
    run(docs)
    old_notes = _chunks(store, source="notes.txt")
    (docs / "notes.txt").write_text("Notes v2: the library opens at ten.\n")
    (docs / "kitchen.md").write_text(MARKDOWN_V2)
    real_write = Collection.write_many

    def dying_write(self: Collection, writes: list[DocumentWrite]) -> None:
        """Killed as the real one could be: every document marked, one new chunk stored."""
        self._put(
            *(
                replace(
                    w.record,
                    state="writing",
                    prev_version=w.previous.version,
                    prev_chunks=w.previous.chunks,
                    prev_hash=w.previous.doc_hash,
                )
                for w in writes
                if w.previous
            )
        )
        first = writes[0]
        self.chunks_collection().upsert(
            ids=first.record.ids()[:1],
            embeddings=np.asarray(first.embeddings[:1], dtype=np.float32),
            documents=list(first.texts[:1]),
            metadatas=[c.to_metadata() for c in first.chunks[:1]],
        )
        raise Killed

    monkeypatch.setattr(Collection, "write_many", dying_write)
    with pytest.raises(Killed):
        run(docs)
    monkeypatch.setattr(Collection, "write_many", real_write)
    pending = [r for r in store.documents().values() if r.state == "writing"]
    assert sorted(r.source for r in pending) == ["kitchen.md", "notes.txt"]  # detectable...
    for record in pending:  # ...and each old version whole
        assert len(_chunks(store, source=record.source)) >= record.prev_chunks
    report = run(docs)
    assert sorted(report.recovered) == [
        ("kitchen.md", "interrupted write rolled back to the old version"),
        ("notes.txt", "interrupted write rolled back to the old version"),
    ]
    assert_consistent(store)
    assert _chunks(store, source="notes.txt") != old_notes
    texts = " ".join(store.chunks_collection().get(include=["documents"])["documents"])
    assert "Notes v2" in texts and "Whisks" in texts and "library opens at nine" not in texts


def test_ctrl_c_leaves_documents_whole(
    tmp_path: Path, run: Run, store: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = write_corpus(tmp_path / "docs")
    monkeypatch.setattr(pipeline, "GROUP_BATCHES", 0)  # a group per file: several groups

    def interrupt(progress: Any) -> None:
        if progress.chunks_written:
            raise KeyboardInterrupt

    report = run(docs, on_progress=interrupt)
    assert report.interrupted
    assert_consistent(store)
    done = len(store.documents())
    assert 1 <= done < 6
    assert run(docs).counts()["added"] == 6 - done
    assert_consistent(store)


MARKDOWN_V2 = "# Kitchen Handbook\n\n## Whisks\n\nBalloon whisks aerate cream quickly.\n" + "".join(
    f"\n## Tool {i}\n\nTool {i} is kept in drawer {i} next to the spoons and ladles.\n"
    for i in range(8)
)


def test_pdf_page_metadata_survives_updates(tmp_path: Path, run: Run, store: Collection) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "book.pdf", ["Chapter one text.", "Chapter two text.", "Chapter three."])
    run(docs)
    assert [m["page"] for m in _chunks(store)] == [1, 2, 3]
