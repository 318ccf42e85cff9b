"""One Quarry collection, the component ingestion and retrieval both go through: its chunks
in one Chroma collection, a manifest of the documents they come from in a second, and the
BM25 keyword index kept beside them. Nothing outside this module touches Chroma's API.

Chroma has no transactions, so each document is replaced in a fixed order that a later run
can finish or undo (`recover`):

1. the manifest record is marked `writing`, naming the old and the new version;
2. the new chunks are upserted (ids `<doc>:<version>:<n>`, so old and new never collide);
3. the old chunks are deleted;
4. the record is marked `ok`.

A document of up to `batch` chunks goes in one upsert, which Chroma applies as a whole, so
readers see the old version, then briefly both, then the new one: never a half document.

A Chroma server that stops answering, or a disk that fills up, surfaces from every method as a
`StoreUnavailableError` whose message says what happened and what to do: the CLI, the page
and the API show that sentence, and the write order above keeps what was stored whole.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

import numpy as np

from quarry.ingest.keyword_index import KeywordHit, KeywordIndex
from quarry.ingest.records import ChunkRecord, StoredChunk
from quarry.settings import EmbeddingBackend, QuarrySettings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection as ChromaCollection
    from chromadb.api.types import Include, Where

MANIFEST_SUFFIX = "__documents"
SCHEMA = 1
# Backends since removed, and the one that now embeds questions for their collections.
RETIRED_BACKENDS = {"onnx": "openvino", "onnx-int8": "openvino"}
log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")
# How a full disk reads in the errors of SQLite, Chroma's Rust core and the OS.
_DISK_FULL = ("disk is full", "no space left on device", "os error 28")


class StoreError(RuntimeError):
    """Chroma cannot be used as asked; the message says what to do."""


class ModelMismatchError(StoreError):
    """The collection was embedded with another model; mixing vectors would break search."""


class StoreUnavailableError(StoreError):
    """The Chroma server stopped answering or the disk is full: the message says which and
    what to do, instead of an httpx or SQLite traceback (which the page and the API would
    otherwise blame on the model server, or show as "Something went wrong")."""


@dataclass(frozen=True)
class StoreLocation:
    """Where a collection lives, for messages: a Chroma server's URL or an embedded folder."""

    url: str | None = None
    path: Path | None = None

    @classmethod
    def of(cls, settings: QuarrySettings) -> StoreLocation:
        chroma = settings.chroma
        if chroma.host:
            scheme = "https" if chroma.ssl else "http"
            return cls(url=f"{scheme}://{chroma.host}:{chroma.port}")
        return cls(path=embedded_path(settings))

    def unavailable(self, exc: BaseException) -> StoreUnavailableError | None:
        """`exc` as a sentence when it means the server is gone or the disk is full; None for
        any other error (a bug, which keeps its traceback)."""
        import httpx

        if isinstance(exc, StoreError):
            return None
        if _disk_full(exc):
            where = getattr(exc, "filename", None) or self.path or self.url or "the Chroma store"
            return StoreUnavailableError(
                f"No space left on device while writing {where}. Free some space and run "
                "again; every document stored so far is whole."
            )
        if isinstance(exc, httpx.TransportError | ConnectionError):
            at = f" at {self.url}" if self.url else ""
            return StoreUnavailableError(
                f"The Chroma server{at} is not answering ({type(exc).__name__}). Start it "
                "again, then retry; every document stored so far is whole."
            )
        return None


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(sign in str(exc).lower() for sign in _DISK_FULL)


def _guarded(
    method: Callable[Concatenate[Collection, _P], _R],
) -> Callable[Concatenate[Collection, _P], _R]:
    """A Collection method whose lost server or full disk raises `StoreUnavailableError`."""

    @functools.wraps(method)
    def wrapper(self: Collection, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.guard():
            return method(self, *args, **kwargs)

    return wrapper


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def document_id(root: str, source: str) -> str:
    return hashlib.sha256(f"{root}\0{source}".encode()).hexdigest()[:20]


def chunk_ids(doc_id: str, version: str, count: int) -> list[str]:
    return [f"{doc_id}:{version}:{i}" for i in range(count)]


@dataclass(frozen=True)
class DocRecord:
    """A document as the manifest knows it; `version` names its current set of chunks."""

    doc_id: str
    root: str
    source: str
    title: str
    doc_hash: str
    size: int
    mtime_ns: int
    version: str
    chunks: int
    state: str = "ok"
    prev_version: str = ""
    prev_chunks: int = 0
    prev_hash: str = ""
    updated_at: str = ""

    @property
    def path(self) -> Path:
        return Path(self.root) / self.source

    def ids(self) -> list[str]:
        return chunk_ids(self.doc_id, self.version, self.chunks)

    def prev_ids(self) -> list[str]:
        return chunk_ids(self.doc_id, self.prev_version, self.prev_chunks)


def open_client(settings: QuarrySettings) -> ClientAPI:
    """A Chroma client: HTTP when `chroma.host` is set, else embedded under the data folder."""
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    options = ChromaClientSettings(anonymized_telemetry=False)
    chroma = settings.chroma
    if chroma.host:
        try:
            client = chromadb.HttpClient(
                host=chroma.host, port=chroma.port, ssl=chroma.ssl, settings=options
            )
            client.heartbeat()
        except Exception:
            raise StoreUnavailableError(
                f"No Chroma server answers at {StoreLocation.of(settings).url}. Start it "
                f"(`chroma run --path FOLDER --port {chroma.port}`) or point "
                "QUARRY_CHROMA_HOST/PORT at a running one, then run again."
            ) from None
        return client
    path = embedded_path(settings)
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=options)


def embedded_path(settings: QuarrySettings) -> Path:
    return settings.chroma.path or settings.data_dir / "chroma"


@contextlib.contextmanager
def writer_lock(settings: QuarrySettings) -> Iterator[None]:
    """One writing process per embedded store (a PersistentClient is not multi-process safe).

    A Chroma server serialises writers itself, so no lock is taken for one.
    """
    if settings.chroma.host:
        yield
        return
    path = embedded_path(settings)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".quarry-writer.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"Another Quarry process is writing to {path}; wait for it to finish and try "
                "again, or run a Chroma server (QUARRY_CHROMA_HOST) for concurrent writers."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def keyword_folder(settings: QuarrySettings) -> Path:
    """Where keyword indexes live: inside the embedded store, or per Chroma server."""
    chroma = settings.chroma
    if chroma.host:
        return settings.data_dir / "keyword" / f"{chroma.host}_{chroma.port}"
    return embedded_path(settings) / "keyword"


@dataclass(frozen=True)
class CollectionSummary:
    name: str
    documents: int
    chunks: int
    embedding_model: str
    updated_at: str


def list_collections(client: ClientAPI, location: StoreLocation) -> list[CollectionSummary]:
    """Quarry's collections with document and chunk counts, model and last update;
    `location` names the store in the sentence a lost server or a full disk raises."""
    with Collection.guard_for(location):
        listed = client.list_collections()
    names = sorted(c if isinstance(c, str) else c.name for c in listed)
    rows = []
    for name in names:
        if name.endswith(MANIFEST_SUFFIX) or name + MANIFEST_SUFFIX not in names:
            continue
        collection = Collection(client, name, location=location)
        with collection.guard():
            chunks = collection.chunks_collection()
            manifest = collection.manifest_collection()
            rows.append(
                CollectionSummary(
                    name=name,
                    documents=manifest.count(),
                    chunks=chunks.count(),
                    embedding_model=str((chunks.metadata or {}).get("embedding_model", "?")),
                    updated_at=str((manifest.metadata or {}).get("updated_at", "")),
                )
            )
    return rows


class Collection:
    """One Quarry collection: chunks, the manifest of the documents they come from, and the
    keyword index over the chunks."""

    def __init__(
        self,
        client: ClientAPI,
        name: str,
        *,
        keyword_folder: Path | None = None,
        batch: int = 1000,
        location: StoreLocation | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.location = location or StoreLocation()
        with self.guard():
            self.batch = max(1, min(batch, int(client.get_max_batch_size())))
        self.keyword = KeywordIndex(keyword_folder, name) if keyword_folder else None
        self._chunks: ChromaCollection | None = None
        self._manifest: ChromaCollection | None = None

    @classmethod
    def open(
        cls, settings: QuarrySettings, name: str, client: ClientAPI | None = None
    ) -> Collection:
        return cls(
            client or open_client(settings),
            name,
            keyword_folder=keyword_folder(settings),
            batch=settings.chroma.write_batch_size,
            location=StoreLocation.of(settings),
        )

    @staticmethod
    @contextlib.contextmanager
    def guard_for(location: StoreLocation) -> Iterator[None]:
        """Chroma calls inside raise `StoreUnavailableError` for a lost server or a full
        disk; every other error passes unchanged."""
        try:
            yield
        except Exception as exc:
            unavailable = location.unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc

    def guard(self) -> contextlib.AbstractContextManager[None]:
        return self.guard_for(self.location)

    # -- collections -------------------------------------------------------------------

    def exists(self) -> bool:
        try:
            self.client.get_collection(self.name)
            self.client.get_collection(self.name + MANIFEST_SUFFIX)
        except Exception as exc:
            unavailable = self.location.unavailable(exc)
            if unavailable is not None:  # not "no collection": the server is gone
                raise unavailable from exc
            return False
        return True

    @_guarded
    def chunks_collection(self) -> ChromaCollection:
        if self._chunks is None:
            self._chunks = self.client.get_collection(self.name, embedding_function=None)
        return self._chunks

    @_guarded
    def manifest_collection(self) -> ChromaCollection:
        if self._manifest is None:
            self._manifest = self.client.get_collection(
                self.name + MANIFEST_SUFFIX, embedding_function=None
            )
        return self._manifest

    @_guarded
    def model(self) -> str | None:
        """The embedding model the collection was built with (None: no collection yet)."""
        if not self.exists():
            return None
        return (self.chunks_collection().metadata or {}).get("embedding_model")

    @_guarded
    def backend(self) -> EmbeddingBackend | None:
        """How its vectors were computed (None: no collection yet); queries use the same.
        Collections made before backends existed were embedded by torch; those of the retired
        ONNX backends are queried on openvino, whose vectors agree with theirs."""
        if not self.exists():
            return None
        stored = (self.chunks_collection().metadata or {}).get("embedding_backend", "torch")
        return cast("EmbeddingBackend", RETIRED_BACKENDS.get(stored, stored))

    def check_model(self, model: str) -> None:
        stored = self.model()
        if stored is not None and stored != model:
            raise ModelMismatchError(
                f"collection {self.name!r} holds embeddings of {stored!r}; this run uses "
                f"{model!r}. Use that model (--model / QUARRY_EMBEDDING_MODEL), another "
                f"--collection, or `quarry forget --collection {self.name}` first."
            )

    @_guarded
    def ensure(self, model: str, dimension: int, backend: EmbeddingBackend = "torch") -> None:
        """Create the collection (cosine space, model and backend recorded) or check the
        model matches."""
        self.check_model(model)
        self._chunks = self.client.get_or_create_collection(
            self.name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={
                "embedding_model": model,
                "embedding_backend": backend,
                "dimension": dimension,
                "quarry_schema": SCHEMA,
                "created_at": now(),
            },
        )
        self._manifest = self.client.get_or_create_collection(
            self.name + MANIFEST_SUFFIX, embedding_function=None, metadata={"created_at": now()}
        )

    @_guarded
    def drop(self) -> None:
        for name in (self.name, self.name + MANIFEST_SUFFIX):
            with contextlib.suppress(Exception):
                self.client.delete_collection(name)
        self._chunks = self._manifest = None
        if self.keyword is not None:
            self.keyword.delete()

    @_guarded
    def mark_updated(self) -> None:
        """Record a change: a new time and a new generation, which outdates keyword indexes.

        Called before a run's first write and after its last, so an index built from a
        half-written collection never carries the final generation.
        """
        manifest = self.manifest_collection()
        stamp = {"updated_at": now(), "generation": uuid.uuid4().hex}
        manifest.modify(metadata={**(manifest.metadata or {}), **stamp})

    @_guarded
    def generation(self) -> str:
        """The collection's current generation, read afresh (another process may write)."""
        manifest = self.client.get_collection(self.name + MANIFEST_SUFFIX, embedding_function=None)
        return str((manifest.metadata or {}).get("generation", ""))

    # -- reading chunks ----------------------------------------------------------------

    @_guarded
    def count(self) -> int:
        return int(self.chunks_collection().count())

    @_guarded
    def nearest(
        self, vector: Sequence[float], n: int, doc_ids: AbstractSet[str] | None = None
    ) -> list[tuple[StoredChunk, float]]:
        """The `n` chunks closest to `vector`, with their cosine similarity, best first; only
        chunks of the documents `doc_ids` when given (a scoped question)."""
        where = None if doc_ids is None else cast("Where", {"doc_id": {"$in": sorted(doc_ids)}})
        found = self.chunks_collection().query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=n,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        ids, texts = found["ids"][0], (found["documents"] or [[]])[0]
        metas, distances = (found["metadatas"] or [[]])[0], (found["distances"] or [[]])[0]
        return [
            (StoredChunk(cid, text, ChunkRecord.from_metadata(meta)), 1.0 - float(distance))
            for cid, text, meta, distance in zip(ids, texts, metas, distances, strict=True)
        ]

    @_guarded
    def get(self, ids: Sequence[str], *, vectors: bool = False) -> list[StoredChunk]:
        """The chunks with these ids that exist, in no particular order."""
        if not ids:
            return []
        include: Include = ["documents", "metadatas", "embeddings"] if vectors else [
            "documents", "metadatas"
        ]  # fmt: skip
        return _chunks(self.chunks_collection().get(ids=list(ids), include=include))

    @_guarded
    def document_chunks(self, doc_id: str, low: int, high: int) -> list[StoredChunk]:
        """Chunks `low`..`high` of one document, in document order."""
        where = {
            "$and": [
                {"doc_id": doc_id},
                {"chunk_index": {"$gte": low}},
                {"chunk_index": {"$lte": high}},
            ]
        }
        found = self.chunks_collection().get(
            where=cast("Where", where), include=["documents", "metadatas"]
        )
        return sorted(_chunks(found), key=lambda c: c.record.chunk_index)

    def pages(self, size: int = 5000, *, vectors: bool = False) -> Iterator[list[StoredChunk]]:
        """Every chunk, a page at a time (for the keyword index and benchmarks)."""
        include: Include = ["documents", "metadatas", "embeddings"] if vectors else [
            "documents", "metadatas"
        ]  # fmt: skip
        offset = 0
        while True:
            with self.guard():
                got = self.chunks_collection().get(include=include, limit=size, offset=offset)
            page = _chunks(got)
            if page:
                yield page
            if len(page) < size:
                return
            offset += size

    @_guarded
    def sample_text(self, chars: int = 200) -> str:
        """Some words the collection holds (to warm searches up with)."""
        got = self.chunks_collection().get(limit=1, include=["documents"])
        return (got["documents"] or ["warm up"])[0][:chars]

    # -- keyword index -----------------------------------------------------------------

    @_guarded
    def keyword_search(
        self, query: str, k: int, doc_ids: AbstractSet[str] | None = None
    ) -> list[KeywordHit]:
        """BM25 hits, only of the documents `doc_ids` when given; the index is reloaded or
        rebuilt once when the collection changed since it was loaded (a teammate's ingest, or
        a crash mid-run)."""
        index = self._keyword_index()
        current = self.generation()
        if index.generation != current and (
            index.stored_generation() != current or not index.load()
        ):
            try:
                index.rebuild(current, self.pages())
            except OSError as exc:  # built but not saved (a full disk): search it anyway
                log.warning("keyword index of %r not saved: %s", self.name, exc)
        try:
            return index.search(query, k, doc_ids)
        except Exception as exc:  # loaded, yet damaged in a way `load` did not see
            log.warning("keyword index of %r unreadable (%r); rebuilding it", self.name, exc)
            index.rebuild(current, self.pages())
            return index.search(query, k, doc_ids)

    @_guarded
    def sync_keyword_index(self) -> int | None:
        """Rebuild the index on disk when the collection changed since it was built; returns
        the chunks indexed, or None when it was up to date."""
        index = self._keyword_index()
        current = self.generation()
        if index.stored_generation() == current:
            return None
        try:
            return index.rebuild(current, self.pages())
        except OSError as exc:
            if _disk_full(exc):
                raise  # the guard names the file and says to free space
            raise StoreError(
                f"cannot write the keyword index at {index.path} ({exc.strerror or exc}); "
                "check that folder's permissions, then run again (searches rebuild it too)"
            ) from exc

    def _keyword_index(self) -> KeywordIndex:
        if self.keyword is None:
            raise StoreError(f"collection {self.name!r} was opened without its keyword index")
        return self.keyword

    # -- manifest ----------------------------------------------------------------------

    @_guarded
    def documents(self) -> dict[str, DocRecord]:
        if not self.exists():
            return {}
        records: dict[str, DocRecord] = {}
        manifest = self.manifest_collection()
        offset, page = 0, 5000
        while True:
            got = manifest.get(include=["metadatas"], limit=page, offset=offset)
            for meta in got["metadatas"] or []:
                record = _doc_record(meta)
                records[record.doc_id] = record
            if len(got["ids"]) < page:
                return records
            offset += page

    def sources(self) -> dict[str, str]:
        """Each document's source (its path under the folder it came from), by doc_id."""
        return {doc_id: record.source for doc_id, record in self.documents().items()}

    def _put(self, *records: DocRecord) -> None:
        """Manifest records, in one call."""
        if records:
            self.manifest_collection().upsert(
                ids=[r.doc_id for r in records],
                embeddings=np.zeros((len(records), 1), dtype=np.float32),
                documents=[r.source for r in records],
                metadatas=[asdict(r) for r in records],
            )

    @_guarded
    def touch(self, record: DocRecord) -> None:
        """Same content, new file times: remember them so the next run skips the file cheaply."""
        self._put(record)

    # -- writes ------------------------------------------------------------------------

    def write(
        self,
        record: DocRecord,
        previous: DocRecord | None,
        *,
        texts: Sequence[str],
        embeddings: Sequence[Sequence[float]] | np.ndarray,
        chunks: Sequence[ChunkRecord],
    ) -> None:
        """Replace `previous` (if any) by `record` and its chunks, in the recoverable order."""
        self.write_many([DocumentWrite(record, previous, texts, embeddings, chunks)])

    @_guarded
    def write_many(self, writes: Sequence[DocumentWrite]) -> None:
        """Replace several documents, each in the recoverable order, with few calls: every
        Chroma call costs about 10 ms whatever its size, a document's chunks about 1 ms each.

        Each step is taken for all the documents at once; a call carries whole documents
        (unless one document alone is larger than `batch`), so a reader never sees part of a
        new version without the rest of it.
        """
        pending = [
            replace(
                w.record,
                state="writing",
                prev_version=w.previous.version if w.previous else "",
                prev_chunks=w.previous.chunks if w.previous else 0,
                prev_hash=w.previous.doc_hash if w.previous else "",
                updated_at=now(),
            )
            for w in writes
        ]
        self._put(*pending)
        for call in _upserts(writes, self.batch):
            self.chunks_collection().upsert(
                ids=call.ids,
                embeddings=call.vectors,
                documents=call.texts,
                metadatas=list(call.metadatas),
            )
        self._finish(*pending)

    @_guarded
    def remove(self, record: DocRecord) -> None:
        """Delete a document: a write of an empty version, recoverable the same way."""
        pending = replace(
            record,
            state="writing",
            version="",
            chunks=0,
            prev_version=record.version,
            prev_chunks=record.chunks,
            prev_hash=record.doc_hash,
        )
        self._put(pending)
        self._finish(pending)

    @_guarded
    def read_chunks(self, record: DocRecord) -> list[StoredChunk]:
        """A stored document's chunks with their vectors, in chunk order (for moves)."""
        found = {c.id: c for c in self.get(record.ids(), vectors=True)}
        ordered = [found[cid] for cid in record.ids() if cid in found]
        if len(ordered) != record.chunks:
            raise StoreError(f"stored chunks of {record.source} are incomplete")
        return ordered

    def _present(self, ids: list[str]) -> set[str]:
        return set(self.chunks_collection().get(ids=ids, include=[])["ids"]) if ids else set()

    def _delete(self, ids: Iterable[str]) -> None:
        ordered = sorted(ids)
        for start in range(0, len(ordered), self.batch):
            self.chunks_collection().delete(ids=ordered[start : start + self.batch])

    def _finish(self, *pending: DocRecord) -> None:
        """Steps 3 and 4: drop the old chunks, then commit (or forget) the records."""
        self._delete({i for p in pending for i in set(p.prev_ids()) - set(p.ids())})
        gone = [p.doc_id for p in pending if p.chunks == 0]
        if gone:
            self.manifest_collection().delete(ids=gone)
        self._put(
            *(
                replace(p, state="ok", prev_version="", prev_chunks=0, prev_hash="")
                for p in pending
                if p.chunks
            )
        )

    @_guarded
    def recover(self) -> list[tuple[str, str]]:
        """Finish or undo every document an interrupted run left `writing`.

        Returns (source, what was done) pairs for the report.
        """
        if not self.exists():
            return []
        pending = self.manifest_collection().get(where={"state": "writing"}, include=["metadatas"])
        done: list[tuple[str, str]] = []
        for meta in pending["metadatas"] or []:
            record = _doc_record(meta)
            present = self._present(record.ids())
            if len(present) == record.chunks:
                self._finish(record)
                done.append((record.source, "interrupted write completed"))
                continue
            self._delete(present - set(record.prev_ids()))
            old = self._present(record.prev_ids())
            if record.prev_chunks and len(old) == record.prev_chunks:
                # Back to the old version; size -1 makes the next scan re-check the file.
                self._put(
                    replace(
                        record,
                        state="ok",
                        version=record.prev_version,
                        chunks=record.prev_chunks,
                        doc_hash=record.prev_hash,
                        size=-1,
                        prev_version="",
                        prev_chunks=0,
                        prev_hash="",
                    )
                )
                done.append((record.source, "interrupted write rolled back to the old version"))
            else:
                self._delete(old)
                self.manifest_collection().delete(ids=[record.doc_id])
                done.append((record.source, "interrupted write removed; will be ingested again"))
        return done


_FIELDS = set(DocRecord.__dataclass_fields__)


@dataclass(frozen=True)
class DocumentWrite:
    """One document's new version: its record (replacing `previous`) and its chunks."""

    record: DocRecord
    previous: DocRecord | None
    texts: Sequence[str]
    embeddings: Sequence[Sequence[float]] | np.ndarray
    chunks: Sequence[ChunkRecord]


@dataclass(frozen=True)
class _Upsert:
    """The arguments of one chunks upsert."""

    ids: list[str]
    texts: list[str]
    vectors: np.ndarray
    metadatas: list[dict[str, str | int]]


def _upserts(writes: Sequence[DocumentWrite], batch: int) -> Iterator[_Upsert]:
    """Whole documents per call, up to `batch` chunks; a larger document is cut alone."""
    pieces = []
    for w in writes:
        ids = w.record.ids()
        vectors = np.asarray(w.embeddings, dtype=np.float32).reshape(len(ids), -1)
        for start in range(0, len(ids), batch):
            end = start + batch
            metadatas = [c.to_metadata() for c in w.chunks[start:end]]
            pieces.append(_Upsert(ids[start:end], list(w.texts[start:end]), vectors[start:end],
                                  metadatas))  # fmt: skip
    part: list[_Upsert] = []
    for piece in pieces:
        if part and sum(len(p.ids) for p in part) + len(piece.ids) > batch:
            yield _joined(part)
            part = []
        part.append(piece)
    if part:
        yield _joined(part)


def _joined(parts: list[_Upsert]) -> _Upsert:
    return _Upsert(
        [i for p in parts for i in p.ids],
        [t for p in parts for t in p.texts],
        np.concatenate([p.vectors for p in parts]),
        [m for p in parts for m in p.metadatas],
    )


def _doc_record(meta: Mapping[str, Any]) -> DocRecord:
    return DocRecord(**{k: v for k, v in meta.items() if k in _FIELDS})


def _chunks(got: Mapping[str, Any]) -> list[StoredChunk]:
    """Chroma's parallel lists as chunks."""
    ids = got["ids"]
    texts = got.get("documents") or [""] * len(ids)
    metas = got.get("metadatas") or [{}] * len(ids)
    vectors = got.get("embeddings")
    return [
        StoredChunk(
            cid,
            texts[i],
            ChunkRecord.from_metadata(metas[i] or {}),
            None if vectors is None else tuple(float(x) for x in vectors[i]),
        )
        for i, cid in enumerate(ids)
    ]
