"""Questions limited to some documents of a collection ("only in contracts/2024/").

A scope is a set of folder prefixes and file names, as the collection names its documents
(each document's `source`, relative to the folder it was ingested from). It is resolved
against the collection's manifest to the documents it covers; dense and keyword search then
see only those. A scope that covers nothing is an error the user can act on, not an empty
answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from quarry.ingest.collection import StoreError


class ScopeError(StoreError):
    """A scope that names no document of the collection; the message says which exist."""


def _normal(path: str) -> str:
    """One spelling per path: forward slashes, no leading "./" or "/", folders end in "/"."""
    cleaned = path.strip().replace("\\", "/")
    while cleaned.startswith("./"):
        cleaned = cleaned[2:]
    return cleaned.lstrip("/")


@dataclass(frozen=True)
class Scope:
    """Folder prefixes ("contracts/2024/") and files ("notes.md") of one collection."""

    paths: tuple[str, ...]

    @classmethod
    def of(cls, paths: Iterable[str] | None) -> Scope | None:
        """The scope of these paths, or None (the whole collection) when there are none."""
        cleaned = tuple(dict.fromkeys(p for p in (_normal(p) for p in paths or ()) if p))
        return cls(cleaned) if cleaned else None

    def covers(self, source: str) -> bool:
        """Whether a document's source is one of the files or lies under one of the folders."""
        for path in self.paths:
            folder = path if path.endswith("/") else path + "/"
            if source == path.rstrip("/") or source.startswith(folder):
                return True
        return False

    def describe(self) -> str:
        """How the page and "not found" name it: "contracts/2024/, notes.md"."""
        return ", ".join(self.paths)

    def documents(self, sources: Mapping[str, str], collection: str) -> frozenset[str]:
        """The ids of the documents it covers, out of `sources` (doc_id -> source); raises
        ScopeError when it covers none."""
        covered = frozenset(doc for doc, source in sources.items() if self.covers(source))
        if not covered:
            known = ", ".join(scope_options(sources.values())[:8]) or "none yet"
            raise ScopeError(
                f'No document of the collection "{collection}" is under {self.describe()}. '
                f"Choose folders or files it holds (for example {known}), or clear the scope."
            )
        return covered


def scope_options(sources: Iterable[str]) -> list[str]:
    """What a user can limit a question to: every folder ("guide/") and file, folders first."""
    files = sorted(set(sources))
    folders: set[str] = set()
    for source in files:
        parts = source.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
    return sorted(folders) + files
