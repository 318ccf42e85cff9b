"""The ingestion run: discover -> plan -> load -> split -> embed -> store, one document at a
time as far as storage is concerned, with embeddings batched across documents for speed."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError
from dataclasses import dataclass, replace
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from quarry.ingest.collection import (
    Collection,
    DocRecord,
    DocumentWrite,
    ModelMismatchError,
    document_id,
    writer_lock,
)
from quarry.ingest.discover import discover
from quarry.ingest.embedding import Embedder
from quarry.ingest.loaders import LOADERS, load
from quarry.ingest.records import (
    Chunk,
    ChunkRecord,
    LoadedDocument,
    LoadError,
    Outcome,
    OutcomeStatus,
    SourceFile,
)
from quarry.ingest.report import IngestReport
from quarry.ingest.splitting import TokenSplitter, chunk_document
from quarry.settings import QuarrySettings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

ProgressCallback = Callable[["Progress"], None]


_T = TypeVar("_T")
# Embedding batches per group: large enough to sort by length and pad little, and to write
# with few Chroma calls; small enough to show progress and lose little to an interrupt.
GROUP_BATCHES = 32
_Group = list[tuple["_Work", LoadedDocument, list[Chunk]]]


class IngestUsageError(ValueError):
    """The run cannot start as asked (bad sizes, other model); exit code 2 in the CLI."""


@dataclass(frozen=True)
class Progress:
    files_done: int
    files_total: int
    chunks_written: int
    seconds: float
    chunks_embedded: int = 0


@dataclass
class _Work:
    """A file that needs writing: new or changed content, or a move of stored chunks."""

    file: SourceFile
    doc_id: str
    doc_hash: str
    stat: os.stat_result
    previous: DocRecord | None
    moved_from: DocRecord | None = None


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _streamed_hash(path: Path) -> str:
    """`file_hash` of a file without holding it: a first run plans thousands of files."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(2**20):
            digest.update(block)
    return digest.hexdigest()


def version_of(doc_hash: str, fingerprint: str) -> str:
    """Names one chunking of one content: new content or new sizes give new chunk ids."""
    return hashlib.sha256(f"{doc_hash}/{fingerprint}".encode()).hexdigest()[:12]


def ingest(
    paths: Sequence[Path],
    settings: QuarrySettings,
    *,
    embedder: Embedder | None = None,
    client: ClientAPI | None = None,
    prune: bool = False,
    dry_run: bool = False,
    limit: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> IngestReport:
    """Bring the collection in line with the files under `paths`; never raises for a bad file.

    Raises `IngestUsageError` before touching anything if the run is impossible as asked.
    """
    run = _Run(settings, embedder, client, prune=prune, dry_run=dry_run, on_progress=on_progress)
    return run.execute(paths, limit)


class _Run:
    def __init__(
        self,
        settings: QuarrySettings,
        embedder: Embedder | None,
        client: ClientAPI | None,
        *,
        prune: bool,
        dry_run: bool,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder or Embedder.from_settings(settings.embedding, settings.cache_dir)
        conf = settings.ingest
        if conf.chunk_size > self.embedder.max_tokens:
            raise IngestUsageError(
                f"chunk size {conf.chunk_size} exceeds what {self.embedder.name} reads "
                f"({self.embedder.max_tokens} tokens); longer chunks would be truncated"
            )
        self.splitter = TokenSplitter(self.embedder.tokenizer, conf.chunk_size, conf.chunk_overlap)
        self.store = Collection.open(settings, conf.collection, client)
        try:
            self.store.check_model(self.embedder.name)
        except ModelMismatchError as exc:
            raise IngestUsageError(str(exc)) from None
        self.prune, self.dry_run, self.on_progress = prune, dry_run, on_progress
        self.report = IngestReport(conf.collection, dry_run=dry_run)
        self._embedded = 0  # chunks embedded so far, counted by the embedding worker
        self._cancel = threading.Event()
        self.started = time.monotonic()
        self.files_total = self.files_done = 0

    def execute(self, paths: Sequence[Path], limit: int | None) -> IngestReport:
        conf = self.settings.ingest
        files, problems = discover(
            paths, supported=LOADERS, include=conf.include, exclude=conf.exclude
        )
        files = files[:limit] if limit else files
        for problem in problems:
            self.report.add(problem)
        self.files_total = len(files)
        if self.dry_run:
            self._plan_and_write(paths, files)
        else:
            with writer_lock(self.settings):
                self.report.recovered = self.store.recover()
                try:
                    self._plan_and_write(paths, files)
                except KeyboardInterrupt:
                    self.report.interrupted = True
                    self.report.recovered += self.store.recover()
        self.report.seconds = time.monotonic() - self.started
        return self.report

    # -- planning ----------------------------------------------------------------------

    def _plan_and_write(self, paths: Sequence[Path], files: list[SourceFile]) -> None:
        records = self.store.documents()
        work: list[_Work] = []
        canonical: dict[str, str] = {}  # content hash -> first path with it in this run
        seen_ids: set[str] = set()
        for file in files:
            item = self._inspect(file, records.get(document_id(str(file.root), file.rel)))
            if item is None:
                continue
            seen_ids.add(item.doc_id)
            if item.doc_hash in canonical:
                reason = f"same content as {canonical[item.doc_hash]}"
                self._done(Outcome(file.rel, "skipped", reason))
                continue
            canonical[item.doc_hash] = file.rel
            if item.previous and item.previous.version == self._version(item.doc_hash):
                self._unchanged(item)
            else:
                work.append(item)
        gone = [r for r in records.values() if r.doc_id not in seen_ids and not r.path.exists()]
        if not self.dry_run and (work or (gone and self.prune)) and self.store.exists():
            self.store.mark_updated()  # outdates the keyword index until it is rebuilt below
        self._match_moves(work, gone)
        moved = {w.moved_from.doc_id for w in work if w.moved_from}
        for record in gone:
            if record.doc_id not in moved and _under(record.path, paths):
                self._prune(record)
        self._write(work)
        if not self.dry_run and (self.report.chunks_written or self.report.counts()["pruned"]):
            self.store.mark_updated()
        if not self.dry_run and self.store.exists():
            self._sync_keyword_index()

    def _sync_keyword_index(self) -> None:
        """Rebuild the BM25 index when the collection changed since it was built."""
        started = time.monotonic()
        indexed = self.store.sync_keyword_index()
        if indexed is not None:
            self.report.keyword_chunks = indexed
            self.report.keyword_seconds = time.monotonic() - started

    def _inspect(self, file: SourceFile, previous: DocRecord | None) -> _Work | None:
        """Hash a file unless its size and time match the manifest; None when it is unusable."""
        try:
            stat = file.path.stat()
        except OSError as exc:
            self._done(Outcome(file.rel, "failed", _os_reason(exc)))
            return None
        if not S_ISREG(stat.st_mode):  # reading a named pipe would wait for a writer forever
            self._done(Outcome(file.rel, "failed", "not a regular file (a pipe or a device)"))
            return None
        limit = self.settings.ingest.max_file_mb
        if stat.st_size > limit * 2**20:
            reason = f"too large ({stat.st_size / 2**20:.1f} MB > {limit:g} MB, max_file_mb)"
            self._done(Outcome(file.rel, "failed", reason))
            return None
        doc_id = document_id(str(file.root), file.rel)
        if (
            previous is not None
            and previous.state == "ok"
            and (previous.size, previous.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        ):
            return _Work(file, doc_id, previous.doc_hash, stat, previous)
        try:
            doc_hash = _streamed_hash(file.path)  # not kept: the bytes are read again to load
        except OSError as exc:
            self._done(Outcome(file.rel, "failed", _os_reason(exc)))
            return None
        return _Work(file, doc_id, doc_hash, stat, previous)

    def _version(self, doc_hash: str) -> str:
        """New content, new sizes or another embedded text give new chunk ids."""
        headings = "/headings" if self.settings.ingest.embed_headings else ""
        return version_of(doc_hash, self.splitter.fingerprint + headings)

    def _embedded_text(self, document: LoadedDocument, chunk: Chunk) -> str:
        """What the embedding model reads of a chunk: with `embed_headings`, where it is."""
        if not self.settings.ingest.embed_headings:
            return chunk.text
        path = chunk.heading_path
        title = "" if path and path[0] == document.title else document.title  # an H1 is both
        return "\n".join(p for p in (title, " > ".join(path), chunk.text) if p)

    def _unchanged(self, item: _Work) -> None:
        previous = item.previous
        assert previous is not None
        size, mtime_ns = item.stat.st_size, item.stat.st_mtime_ns
        if not self.dry_run and (previous.size, previous.mtime_ns) != (size, mtime_ns):
            self.store.touch(replace(previous, size=size, mtime_ns=mtime_ns))
        self._done(Outcome(item.file.rel, "unchanged", chunks=previous.chunks))

    def _match_moves(self, work: list[_Work], gone: list[DocRecord]) -> None:
        """New content equal to a vanished document's: reuse its vectors instead of embedding."""
        by_hash: dict[str, DocRecord] = {}
        for record in gone:
            if record.state == "ok" and record.version == self._version(record.doc_hash):
                by_hash.setdefault(record.doc_hash, record)
        for item in work:
            source = by_hash.pop(item.doc_hash, None)
            if source is not None:
                item.moved_from = source

    def _prune(self, record: DocRecord) -> None:
        if not self.prune:
            reason = "file is gone; its chunks stay until a run with --prune"
            self.report.add(Outcome(record.source, "missing", reason, record.chunks))
            return
        if not self.dry_run:
            self.store.remove(record)
        self.report.add(Outcome(record.source, "pruned", "file is gone", record.chunks))

    # -- writing -----------------------------------------------------------------------

    def _write(self, work: list[_Work]) -> None:
        if self.dry_run:
            for item in work:
                self._done(Outcome(item.file.rel, _status(item), "dry run"))
            return
        fresh = []
        for item in work:
            if item.moved_from:
                self._move(item)
            else:
                fresh.append(item)
        self._write_overlapped(fresh)

    def _write_overlapped(self, fresh: list[_Work]) -> None:
        """While a worker thread embeds one group, this thread writes the group before it to
        Chroma and then reads and splits the files of the next one.

        Writes, outcomes and progress stay in this thread (the page's progress bar must be
        drawn from its own script thread). On an interrupt the group being embedded is
        dropped and every document written is whole: at most one group's work is lost.
        """
        with ThreadPoolExecutor(1, thread_name_prefix="quarry-embed") as worker:
            embedding: tuple[_Group, Future[np.ndarray]] | None = None
            try:
                for group in self._groups(fresh):
                    texts = [self._embedded_text(d, c) for _, d, chunks in group for c in chunks]
                    previous, embedding = embedding, (group, worker.submit(self._embed, texts))
                    if previous is not None:
                        self._store(previous[0], self._wait(previous[1]))
                if embedding is not None:
                    self._store(embedding[0], self._wait(embedding[1]))
            except BaseException:
                self._cancel.set()  # the embedding under way stops at its next slice
                raise

    def _groups(self, fresh: list[_Work]) -> Iterator[_Group]:
        """Loaded files in groups of about `batch_size * GROUP_BATCHES` chunks."""
        group: _Group = []
        size = self.embedder.batch_size * GROUP_BATCHES
        for item in fresh:
            loaded = self._load(item)
            if loaded is not None:
                group.append((item, *loaded))
            if sum(len(chunks) for _, _, chunks in group) >= size:
                yield group
                group = []
        if group:
            yield group

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Vectors for a group, in slices of similar length (little padding), counting
        progress and stopping between slices when the run is interrupted."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: np.ndarray | None = None
        step = self.embedder.batch_size * 4
        for start in range(0, len(order), step):
            if self._cancel.is_set():
                raise KeyboardInterrupt
            rows = order[start : start + step]
            part = self.embedder.encode([texts[i] for i in rows])
            if vectors is None:
                vectors = np.zeros((len(texts), part.shape[1]), dtype=np.float32)
            vectors[rows] = part
            self._embedded += len(rows)
        assert vectors is not None
        return vectors

    def _wait(self, future: Future[_T]) -> _T:
        """The future's result, drawing progress while it runs (embedding a group takes a
        while)."""
        while True:
            try:
                return future.result(timeout=0.25)
            except TimeoutError:
                self._progress()

    def _store(self, group: _Group, vectors: np.ndarray) -> None:
        """Write a group's documents together (few Chroma calls), then report each."""
        self.store.ensure(self.embedder.name, self.embedder.dimension, self.embedder.backend)
        writes, start = [], 0
        for item, document, chunks in group:
            record = self._record(item, document.title, len(chunks))
            writes.append(
                DocumentWrite(
                    record,
                    item.previous,
                    texts=[c.text for c in chunks],
                    embeddings=vectors[start : start + len(chunks)],
                    chunks=[self._chunk_record(record, item, document, c) for c in chunks],
                )
            )
            start += len(chunks)
        self.store.write_many(writes)
        for item, document, chunks in group:
            self._stored(item, len(chunks), "; ".join(document.notes))

    def _load(self, item: _Work) -> tuple[LoadedDocument, list[Chunk]] | None:
        try:
            data = item.file.path.read_bytes()
            if len(data) != item.stat.st_size or item.file.path.stat().st_mtime_ns != (
                item.stat.st_mtime_ns
            ):  # changed since it was planned: what is stored must match what was read
                item.doc_hash = file_hash(data)
            document = load(item.file.path, data)
            chunks = chunk_document(document, self.splitter)
        except LoadError as exc:
            self._done(Outcome(item.file.rel, "skipped" if exc.skip else "failed", exc.reason))
            return None
        except OSError as exc:
            self._done(Outcome(item.file.rel, "failed", _os_reason(exc)))
            return None
        if not chunks:
            self._done(Outcome(item.file.rel, "skipped", "no text to index"))
            return None
        return document, chunks

    def _move(self, item: _Work) -> None:
        source = item.moved_from
        assert source is not None
        stored = self.store.read_chunks(source)
        record = self._record(item, source.title, source.chunks)
        self.store.write(
            record,
            item.previous,
            texts=[c.text for c in stored],
            embeddings=[c.vector or () for c in stored],
            chunks=[
                replace(c.record, source=record.source, root=record.root, doc_id=record.doc_id)
                for c in stored
            ],
        )
        self.store.remove(source)
        self._stored(item, source.chunks, f"moved from {source.source}; not embedded again")

    def _record(self, item: _Work, title: str, chunks: int) -> DocRecord:
        return DocRecord(
            doc_id=item.doc_id,
            root=str(item.file.root),
            source=item.file.rel,
            title=title,
            doc_hash=item.doc_hash,
            size=item.stat.st_size,
            mtime_ns=item.stat.st_mtime_ns,
            version=self._version(item.doc_hash),
            chunks=chunks,
        )

    def _chunk_record(
        self, record: DocRecord, item: _Work, document: LoadedDocument, chunk: Chunk
    ) -> ChunkRecord:
        return ChunkRecord(
            doc_id=record.doc_id,
            root=record.root,
            source=record.source,
            title=document.title,
            heading_path=" > ".join(chunk.heading_path),
            chunk_index=chunk.index,
            start=chunk.start,
            end=chunk.end,
            tokens=chunk.tokens,
            content_hash=hashlib.sha256(chunk.text.encode()).hexdigest()[:16],
            doc_hash=record.doc_hash,
            format=item.file.path.suffix.lower().lstrip("."),
            embedding_model=self.embedder.name,
            page=chunk.page,
        )

    def _stored(self, item: _Work, chunks: int, note: str) -> None:
        self.report.chunks_written += chunks
        self._done(Outcome(item.file.rel, _status(item), note, chunks))

    def _done(self, outcome: Outcome) -> None:
        self.report.add(outcome)
        self.files_done += 1
        self._progress()

    def _progress(self) -> None:
        self.report.chunks_embedded = self._embedded
        if self.on_progress:
            self.on_progress(
                Progress(
                    self.files_done,
                    self.files_total,
                    self.report.chunks_written,
                    time.monotonic() - self.started,
                    self._embedded,
                )
            )


def _status(item: _Work) -> OutcomeStatus:
    return "moved" if item.moved_from else "updated" if item.previous else "added"


def _under(path: Path, roots: Sequence[Path]) -> bool:
    for root in roots:
        root = Path(root).absolute()
        if path == root or root in path.parents:
            return True
    return False


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):  # it was there when the run found it
        return "deleted or moved during the run; the next run sees where it went"
    return exc.strerror or type(exc).__name__
