"""The BM25 keyword index of a collection, kept on disk beside it.

Dense vectors miss exact words (identifiers, flags, error codes, rare names); BM25 finds them.
The index is built from the chunks stored in Chroma, so it can always be rebuilt from them,
and it is stamped with the collection's *generation*, a token every write to the collection
changes (`Collection.mark_updated`). Ingestion rebuilds the index after it writes; a reader
whose index carries another generation (a crash mid-run, or a teammate's ingest into a shared
Chroma server) rebuilds it once and saves it for the next reader. Nothing is built per query.

On disk: `<folder>/<collection>/` holds bm25s' matrices, `ids.json` (chunk ids in index
order) and `stamp.json`. A new index is written to a temporary folder and swapped in, so a
reader sees the old index or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quarry.ingest.records import StoredChunk

FORMAT = 1
# Words of two or more letters/digits/underscores: `__init__`, `PYTHONPATH` and `3.12` parts.
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_TOKEN = re.compile(TOKEN_PATTERN)


@dataclass(frozen=True)
class KeywordHit:
    chunk_id: str
    score: float


class Analyzer:
    """Lower-case words, English stop words out, Snowball-stemmed: the same for chunks and
    queries, or query words would never meet the indexed ones."""

    def __init__(self) -> None:
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN

        self._stem: Callable[[list[str]], list[str]] = Stemmer.Stemmer("english").stemWords
        self._stop = frozenset(STOPWORDS_EN)

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in self._stop]
        return self._stem(words)


def indexed_text(chunk: StoredChunk) -> str:
    """What BM25 sees of a chunk: its title and heading path too, which name its subject."""
    parts = [chunk.record.title, chunk.record.heading_path, chunk.text]
    return "\n".join(p for p in parts if p)


class KeywordIndex:
    """BM25 over one collection's chunks; load it, search it, rebuild it from the store."""

    def __init__(self, folder: Path, collection: str) -> None:
        self.path = folder / collection
        self.generation: str | None = None
        self._bm25: Any = None
        self._ids: list[str] = []
        self._analyzer: Analyzer | None = None
        self._last_mask: tuple[tuple[str | None, frozenset[str]], np.ndarray] | None = None

    @property
    def analyzer(self) -> Analyzer:
        if self._analyzer is None:
            self._analyzer = Analyzer()
        return self._analyzer

    def __len__(self) -> int:
        return len(self._ids)

    # -- reading -----------------------------------------------------------------------

    def _stamp(self) -> dict[str, Any]:
        try:
            stamp = json.loads((self.path / "stamp.json").read_text())
        except (OSError, ValueError):
            return {}
        return stamp if isinstance(stamp, dict) and stamp.get("format") == FORMAT else {}

    def stored_generation(self) -> str | None:
        """The generation of the index on disk, or None when there is none (or unreadable)."""
        generation = self._stamp().get("generation")
        return generation if isinstance(generation, str) else None

    def load(self) -> bool:
        """Load the index on disk; False when there is none, or it cannot be read or does not
        fit together (a truncated or garbled file): the caller then rebuilds it from the
        store, which always holds what it needs."""
        import bm25s

        stamp = self._stamp()
        generation = stamp.get("generation")
        if not isinstance(generation, str):
            return False
        try:
            ids = json.loads((self.path / "ids.json").read_text())
            bm25 = bm25s.BM25.load(str(self.path), show_progress=False) if ids else None
        except Exception:  # swapped out while reading, or damaged: numpy, json, EOF errors
            return False
        if not (isinstance(ids, list) and len(ids) == stamp.get("chunks")):
            return False
        if bm25 is not None and not _fits(bm25, len(ids)):
            return False
        self._bm25, self._ids, self.generation = bm25, ids, generation
        return True

    def search(
        self, query: str, k: int, doc_ids: AbstractSet[str] | None = None
    ) -> list[KeywordHit]:
        """The `k` best-scoring chunks for the query's words, best first; only chunks of the
        documents `doc_ids` when given."""
        if self._bm25 is None or k < 1:
            return []
        vocab = self._bm25.vocab_dict
        words = [w for w in self.analyzer(query) if w in vocab]
        if not words:
            return []
        mask = None if doc_ids is None else self._mask(frozenset(doc_ids))
        found, scores = self._bm25.retrieve(
            [words], k=min(k, len(self._ids)), show_progress=False, n_threads=1, weight_mask=mask
        )
        return [
            KeywordHit(self._ids[int(i)], float(s))
            for i, s in zip(found[0], scores[0], strict=True)
            if s > 0
        ]

    def _mask(self, doc_ids: frozenset[str]) -> np.ndarray:
        """1 for the chunks of these documents, 0 for the rest (a chunk id starts with its
        document's id); the last mask is kept, as a conversation asks the same scope again."""
        key = (self.generation, doc_ids)
        if self._last_mask is None or self._last_mask[0] != key:
            mask = np.fromiter(
                (cid.partition(":")[0] in doc_ids for cid in self._ids), dtype=np.float32
            )
            self._last_mask = (key, mask)
        return self._last_mask[1]

    # -- writing -----------------------------------------------------------------------

    def rebuild(
        self,
        generation: str,
        pages: Iterable[list[StoredChunk]],
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Index every chunk and swap the result in; returns the chunk count.

        `generation` must be read before the chunks, so a write that lands meanwhile leaves
        the index stamped as older than the collection and the next reader rebuilds again.
        """
        import bm25s

        ids: list[str] = []
        tokens: list[list[str]] = []
        for page in pages:
            ids += [chunk.id for chunk in page]
            tokens += [self.analyzer(indexed_text(chunk)) for chunk in page]
            if on_progress:
                on_progress(len(ids))
        bm25 = None
        if ids:
            bm25 = bm25s.BM25()
            bm25.index(tokens, show_progress=False)
        # In memory first: a search can use the index even when saving it fails (a full disk).
        self._bm25, self._ids, self.generation = bm25, ids, generation
        with _swap(self.path) as staging:
            if bm25 is not None:
                bm25.save(str(staging), show_progress=False)
            (staging / "ids.json").write_text(json.dumps(ids))
            stamp = {"format": FORMAT, "generation": generation, "chunks": len(ids)}
            (staging / "stamp.json").write_text(json.dumps(stamp))
        return len(ids)

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._bm25, self._ids, self.generation = None, [], None


def _fits(bm25: Any, documents: int) -> bool:
    """The loaded matrices agree with each other, the vocabulary and the ids: a damaged file
    can load and then fail inside a search (an index out of range)."""
    try:
        scores = bm25.scores
        data, indices, indptr = scores["data"], scores["indices"], scores["indptr"]
        words = [i for word, i in bm25.vocab_dict.items() if word]  # "" is never asked for
        return bool(
            int(scores["num_docs"]) == documents
            and words
            and 0 <= min(words) <= max(words) < len(indptr) - 1
            and len(data) == len(indices) == int(indptr[-1])
            and (len(indices) == 0 or 0 <= int(indices.min()) <= int(indices.max()) < documents)
        )
    except Exception:
        return False


@contextlib.contextmanager
def _swap(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces `target` in two renames."""
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    staging = target.with_name(f".{target.name}.new-{token}")
    retired = target.with_name(f".{target.name}.old-{token}")
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
