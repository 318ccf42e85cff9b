"""Plain data passed between the stages, so each stage can be tested on its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Markup = Literal["markdown", "rst", "plain"]
OutcomeStatus = Literal[
    "added", "updated", "unchanged", "moved", "pruned", "skipped", "failed", "missing"
]


class LoadError(Exception):
    """A file that cannot become text. `skip` marks the harmless cases (an empty file)."""

    def __init__(self, reason: str, *, skip: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.skip = skip


@dataclass(frozen=True)
class TextBlock:
    """A run of extracted text; PDFs give one per page so chunks never straddle pages."""

    text: str
    page: int | None = None


@dataclass
class LoadedDocument:
    title: str
    markup: Markup
    blocks: list[TextBlock]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Chunk:
    """A piece of one block; `start`/`end` are character offsets in that block's text. The
    text is that slice, but for the later pieces of a table or code block too large for one
    chunk, which repeat its header row, fence or directive on top (and a closing fence)."""

    text: str
    index: int
    start: int
    end: int
    tokens: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceFile:
    """A file found under an ingested root; `rel` (POSIX, relative to `root`) names it."""

    path: Path
    root: Path
    rel: str


@dataclass(frozen=True)
class Outcome:
    """One line of the final report."""

    path: str
    status: OutcomeStatus
    reason: str = ""
    chunks: int = 0


@dataclass(frozen=True)
class ChunkRecord:
    """What is stored beside each chunk's text and vector: the one schema ingestion writes and
    retrieval and the keyword index read. A document is (root, source), named by `doc_id`."""

    doc_id: str
    root: str
    source: str
    title: str
    heading_path: str  # "Install > Linux"
    chunk_index: int
    start: int
    end: int
    tokens: int
    content_hash: str
    doc_hash: str
    format: str  # the file's extension: md, pdf, ...
    embedding_model: str
    page: int | None = None

    def to_metadata(self) -> dict[str, str | int]:
        """Chroma's metadata: scalars only, and no key for a missing page."""
        meta: dict[str, str | int] = {
            name: value for name, value in asdict(self).items() if value is not None
        }
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, object]) -> ChunkRecord:
        """Read a stored record back; keys written by older versions are ignored."""
        page = meta.get("page")
        return cls(
            doc_id=str(meta.get("doc_id", "")),
            root=str(meta.get("root", "")),
            source=str(meta.get("source", "")),
            title=str(meta.get("title", "")),
            heading_path=str(meta.get("heading_path", "")),
            chunk_index=_int(meta.get("chunk_index")),
            start=_int(meta.get("start")),
            end=_int(meta.get("end")),
            tokens=_int(meta.get("tokens")),
            content_hash=str(meta.get("content_hash", "")),
            doc_hash=str(meta.get("doc_hash", "")),
            format=str(meta.get("format", "")),
            embedding_model=str(meta.get("embedding_model", "")),
            page=None if page is None else _int(page),
        )


@dataclass(frozen=True)
class StoredChunk:
    """A chunk read back from a collection; `vector` only when it was asked for."""

    id: str
    text: str
    record: ChunkRecord
    vector: tuple[float, ...] | None = None


def _int(value: object) -> int:
    return int(value) if isinstance(value, (int, float, str)) else 0
