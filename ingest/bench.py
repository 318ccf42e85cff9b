"""`quarry bench ingest`: the full pipeline against bare `SentenceTransformer.encode`.

Both sides use the same loaded model, batch size and chunk texts, so the ratio shows what
loading, splitting and storing cost on top of the embedding itself. Runs in a throwaway
embedded store (or a throwaway collection on the configured Chroma server).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from quarry.components import Components
from quarry.settings import QuarrySettings


@dataclass(frozen=True)
class BenchResult:
    files: int
    chunks: int
    model_load_s: float
    pipeline_s: float
    encode_s: float
    rerun_s: float
    failed: int

    @property
    def pipeline_rate(self) -> float:
        return self.chunks / self.pipeline_s if self.pipeline_s else 0.0

    @property
    def encode_rate(self) -> float:
        return self.chunks / self.encode_s if self.encode_s else 0.0

    @property
    def ratio(self) -> float:
        """Pipeline throughput as a fraction of bare encoding (target >= 0.85)."""
        return self.pipeline_rate / self.encode_rate if self.encode_rate else 0.0

    @property
    def rerun_fraction(self) -> float:
        """Unchanged second run as a fraction of the first (target <= 0.05)."""
        return self.rerun_s / self.pipeline_s if self.pipeline_s else 0.0


def bench_ingest(path: Path, settings: QuarrySettings, *, limit: int | None) -> BenchResult:
    with tempfile.TemporaryDirectory(prefix="quarry-bench-") as tmp:
        collection = f"bench-{uuid.uuid4().hex[:8]}"
        components = Components(
            settings.model_copy(
                update={
                    "data_dir": Path(tmp),
                    "ingest": settings.ingest.model_copy(update={"collection": collection}),
                }
            )
        )
        embedder = components.embedder()
        started = time.monotonic()
        embedder.encode(["warm up"])  # load the weights outside both timings
        load_s = time.monotonic() - started
        first = components.ingest([path], limit=limit)
        texts = [c.text for page in components.collection().pages() for c in page]
        started = time.monotonic()
        embedder.model.encode(
            texts,
            batch_size=embedder.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        encode_s = time.monotonic() - started
        second = components.ingest([path], limit=limit)
    written = first.counts()
    return BenchResult(
        files=written["added"],
        chunks=first.chunks_written,
        model_load_s=load_s,
        pipeline_s=first.seconds,
        encode_s=encode_s,
        rerun_s=second.seconds,
        failed=written["failed"],
    )
