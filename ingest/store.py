"""The Chroma side: chunks in one collection, a manifest of documents in a second one.

Chroma has no transactions, so each document is replaced in a fixed order that a later run
can finish or undo (`recover`):

1. the manifest record is marked `writing`, naming the old and the new version;
2. the new chunks are upserted (ids `<doc>:<version>:<n>`, so old and new never collide);
3. the old chunks are deleted;
4. the record is marked `ok`.

A document of up to `batch` chunks goes in one upsert, which Chroma applies as a whole, so
readers see the old version, then briefly both, then the new one: never a half document.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from quarry.settings import QuarrySettings

MANIFEST_SUFFIX = "__documents"
SCHEMA = 1


class StoreError(RuntimeError):
    """Chroma cannot be used as asked; the message says what to do."""


class ModelMismatchError(StoreError):
    """The collection was embedded with another model; mixing vectors would break search."""


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


def open_client(settings: QuarrySettings) -> Any:
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
        except Exception as exc:
            scheme = "https" if chroma.ssl else "http"
            raise StoreError(
                f"cannot reach the Chroma server at {scheme}://{chroma.host}:{chroma.port} "
                f"({type(exc).__name__}); is it running? (QUARRY_CHROMA_HOST/PORT)"
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
                f"another Quarry process is writing to {path}; wait for it to finish, or run "
                "a Chroma server (QUARRY_CHROMA_HOST) for concurrent writers"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def list_collections(client: Any) -> list[dict[str, Any]]:
    """Quarry's collections with document and chunk counts, model and last update."""
    names = sorted(c if isinstance(c, str) else c.name for c in client.list_collections())
    rows = []
    for name in names:
        if name.endswith(MANIFEST_SUFFIX) or name + MANIFEST_SUFFIX not in names:
            continue
        store = Store(client, name)
        meta = store.chunks_collection().metadata or {}
        manifest = store.manifest_collection()
        rows.append(
            {
                "name": name,
                "documents": manifest.count(),
                "chunks": store.chunks_collection().count(),
                "embedding_model": meta.get("embedding_model", "?"),
                "updated_at": (manifest.metadata or {}).get("updated_at", ""),
            }
        )
    return rows


class Store:
    """One Quarry collection: chunks plus the manifest of the documents they come from."""

    def __init__(self, client: Any, name: str, *, batch: int = 1000) -> None:
        self.client = client
        self.name = name
        self.batch = max(1, min(batch, int(client.get_max_batch_size())))
        self._chunks: Any = None
        self._manifest: Any = None

    # -- collections -------------------------------------------------------------------

    def exists(self) -> bool:
        try:
            self.client.get_collection(self.name)
            self.client.get_collection(self.name + MANIFEST_SUFFIX)
        except Exception:
            return False
        return True

    def chunks_collection(self) -> Any:
        if self._chunks is None:
            self._chunks = self.client.get_collection(self.name, embedding_function=None)
        return self._chunks

    def manifest_collection(self) -> Any:
        if self._manifest is None:
            self._manifest = self.client.get_collection(
                self.name + MANIFEST_SUFFIX, embedding_function=None
            )
        return self._manifest

    def model(self) -> str | None:
        """The embedding model the collection was built with (None: no collection yet)."""
        if not self.exists():
            return None
        return (self.chunks_collection().metadata or {}).get("embedding_model")

    def check_model(self, model: str) -> None:
        stored = self.model()
        if stored is not None and stored != model:
            raise ModelMismatchError(
                f"collection {self.name!r} holds embeddings of {stored!r}; this run uses "
                f"{model!r}. Use that model (--model / QUARRY_EMBEDDING_MODEL), another "
                f"--collection, or `quarry forget --collection {self.name}` first."
            )

    def ensure(self, model: str, dimension: int) -> None:
        """Create the collection (cosine space, model recorded) or check the model matches."""
        self.check_model(model)
        self._chunks = self.client.get_or_create_collection(
            self.name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={
                "embedding_model": model,
                "dimension": dimension,
                "quarry_schema": SCHEMA,
                "created_at": now(),
            },
        )
        self._manifest = self.client.get_or_create_collection(
            self.name + MANIFEST_SUFFIX, embedding_function=None, metadata={"created_at": now()}
        )

    def drop(self) -> None:
        for name in (self.name, self.name + MANIFEST_SUFFIX):
            with contextlib.suppress(Exception):
                self.client.delete_collection(name)
        self._chunks = self._manifest = None

    def mark_updated(self) -> None:
        """Record a change: a new time and a new generation, which outdates keyword indexes.

        Called before a run's first write and after its last, so an index built from a
        half-written collection never carries the final generation.
        """
        manifest = self.manifest_collection()
        stamp = {"updated_at": now(), "generation": uuid.uuid4().hex}
        manifest.modify(metadata={**(manifest.metadata or {}), **stamp})

    def generation(self) -> str:
        """The collection's current generation, read afresh (another process may write)."""
        manifest = self.client.get_collection(self.name + MANIFEST_SUFFIX, embedding_function=None)
        return str((manifest.metadata or {}).get("generation", ""))

    # -- manifest ----------------------------------------------------------------------

    def documents(self) -> dict[str, DocRecord]:
        if not self.exists():
            return {}
        records: dict[str, DocRecord] = {}
        manifest = self.manifest_collection()
        offset, page = 0, 5000
        while True:
            got = manifest.get(include=["metadatas"], limit=page, offset=offset)
            for meta in got["metadatas"]:
                record = DocRecord(**{k: v for k, v in meta.items() if k in _FIELDS})
                records[record.doc_id] = record
            if len(got["ids"]) < page:
                return records
            offset += page

    def _put(self, record: DocRecord) -> None:
        self.manifest_collection().upsert(
            ids=[record.doc_id],
            embeddings=[[0.0]],
            documents=[record.source],
            metadatas=[asdict(record)],
        )

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
        embeddings: Sequence[Sequence[float]],
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        """Replace `previous` (if any) by `record` and its chunks, in the recoverable order."""
        pending = replace(
            record,
            state="writing",
            prev_version=previous.version if previous else "",
            prev_chunks=previous.chunks if previous else 0,
            prev_hash=previous.doc_hash if previous else "",
            updated_at=now(),
        )
        self._put(pending)
        ids = record.ids()
        chunks = self.chunks_collection()
        for start in range(0, len(ids), self.batch):
            end = start + self.batch
            chunks.upsert(
                ids=ids[start:end],
                embeddings=[list(e) for e in embeddings[start:end]],
                documents=list(texts[start:end]),
                metadatas=list(metadatas[start:end]),
            )
        self._finish(pending)

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

    def read_chunks(self, record: DocRecord) -> dict[str, Any]:
        """Texts, vectors and metadata of a stored document, in chunk order (for moves)."""
        got = self.chunks_collection().get(
            ids=record.ids(), include=["documents", "embeddings", "metadatas"]
        )
        order = {cid: i for i, cid in enumerate(got["ids"])}
        ranked = [order[cid] for cid in record.ids() if cid in order]
        if len(ranked) != record.chunks:
            raise StoreError(f"stored chunks of {record.source} are incomplete")
        keys = ("documents", "embeddings", "metadatas")
        return {key: [got[key][i] for i in ranked] for key in keys}

    def _present(self, ids: list[str]) -> set[str]:
        return set(self.chunks_collection().get(ids=ids, include=[])["ids"]) if ids else set()

    def _delete(self, ids: Iterable[str]) -> None:
        ordered = sorted(ids)
        for start in range(0, len(ordered), self.batch):
            self.chunks_collection().delete(ids=ordered[start : start + self.batch])

    def _finish(self, pending: DocRecord) -> None:
        """Steps 3 and 4: drop the old chunks, then commit (or forget) the record."""
        self._delete(set(pending.prev_ids()) - set(pending.ids()))
        if pending.chunks == 0:
            self.manifest_collection().delete(ids=[pending.doc_id])
        else:
            self._put(replace(pending, state="ok", prev_version="", prev_chunks=0, prev_hash=""))

    def recover(self) -> list[tuple[str, str]]:
        """Finish or undo every document an interrupted run left `writing`.

        Returns (source, what was done) pairs for the report.
        """
        if not self.exists():
            return []
        pending = self.manifest_collection().get(where={"state": "writing"}, include=["metadatas"])
        done: list[tuple[str, str]] = []
        for meta in pending["metadatas"]:
            record = DocRecord(**{k: v for k, v in meta.items() if k in _FIELDS})
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
