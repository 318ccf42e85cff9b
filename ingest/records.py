"""Plain data passed between the stages, so each stage can be tested on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Markup = Literal["markdown", "rst", "plain"]
Status = Literal["added", "updated", "unchanged", "moved", "pruned", "skipped", "failed", "missing"]


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
    status: Status
    reason: str = ""
    chunks: int = 0
