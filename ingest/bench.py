"""`quarry bench ingest`: the pipeline on each embedding backend, beside bare PyTorch.

In one run, on the same files: bare `SentenceTransformer.encode` (float32 PyTorch, the
baseline) of the chunks the pipeline makes, then the whole pipeline once per backend, each
into its own throwaway embedded store. Every backend's vectors are compared with PyTorch's,
chunk by chunk (the chunk ids are the same in every run), and the default backend's
pipeline runs a second time over the unchanged files. Model loading and the openvino conversion
happen before the clocks start.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quarry.components import Components
from quarry.ingest.collection import Collection
from quarry.ingest.embedding import Embedder
from quarry.ingest.records import StoredChunk
from quarry.settings import EmbeddingBackend, QuarrySettings

BACKENDS: tuple[EmbeddingBackend, ...] = ("torch", "bf16", "openvino")
MIN_COSINE = 0.99  # every chunk's vector against PyTorch's: the quality gate


@dataclass(frozen=True)
class BackendRun:
    backend: EmbeddingBackend
    chunks: int
    prepare_s: float  # loading (and for openvino, converting) before the clock starts
    pipeline_s: float
    min_cosine: float
    mean_cosine: float
    below_gate: int  # chunks whose vector is less similar to PyTorch's than MIN_COSINE
    rerun_s: float | None = None  # the unchanged second run, for the default backend

    @property
    def rate(self) -> float:
        return self.chunks / self.pipeline_s if self.pipeline_s else 0.0

    @property
    def passes(self) -> bool:
        return self.below_gate == 0


@dataclass(frozen=True)
class BenchResult:
    files: int
    failed: int
    chunks: int
    encode_s: float  # bare float32 PyTorch encode of the same chunk texts
    default: EmbeddingBackend
    runs: list[BackendRun]

    @property
    def encode_rate(self) -> float:
        return self.chunks / self.encode_s if self.encode_s else 0.0

    def run(self, backend: EmbeddingBackend) -> BackendRun:
        return next(r for r in self.runs if r.backend == backend)


def bench_ingest(
    path: Path,
    settings: QuarrySettings,
    *,
    limit: int | None,
    backends: tuple[EmbeddingBackend, ...] = BACKENDS,
) -> BenchResult:
    default = settings.embedding.backend
    backends = ("torch", *(b for b in backends if b != "torch"))  # torch is the reference
    runs: list[BackendRun] = []
    reference: dict[str, np.ndarray] = {}
    files = failed = 0
    encode_s = 0.0
    with tempfile.TemporaryDirectory(prefix="quarry-bench-") as tmp:
        for backend in backends:
            components = _components(settings, Path(tmp) / backend, backend)
            embedder = components.embedder()
            started = time.monotonic()
            embedder.encode(["warm up"])  # load the weights, export the graph
            prepare_s = time.monotonic() - started
            first = components.ingest([path], limit=limit)
            chunks = _chunks(components.collection())
            vectors = {c.id: np.asarray(c.vector, dtype=np.float32) for c in chunks}
            if backend == "torch":
                files, failed = first.counts()["added"], first.counts()["failed"]
                reference = vectors
                encode_s = _bare_encode(embedder, [c.text for c in chunks])
            cosines = np.array([float(vectors[i] @ reference[i]) for i in reference])
            rerun_s = None
            if backend == default:
                rerun_s = components.ingest([path], limit=limit).seconds
            runs.append(
                BackendRun(
                    backend=backend,
                    chunks=first.chunks_written,
                    prepare_s=prepare_s,
                    pipeline_s=first.seconds,
                    min_cosine=float(cosines.min()) if len(cosines) else 1.0,
                    mean_cosine=float(cosines.mean()) if len(cosines) else 1.0,
                    below_gate=int((cosines < MIN_COSINE).sum()),
                    rerun_s=rerun_s,
                )
            )
    return BenchResult(files, failed, len(reference), encode_s, default, runs)


def _components(settings: QuarrySettings, data_dir: Path, backend: EmbeddingBackend) -> Components:
    """Settings for one backend's run: its own store, the caller's cache (exports reused)."""
    return Components(
        settings.model_copy(
            update={
                "data_dir": data_dir,
                "embedding": settings.embedding.model_copy(update={"backend": backend}),
                "ingest": settings.ingest.model_copy(
                    update={"collection": f"bench-{uuid.uuid4().hex[:8]}"}
                ),
            }
        )
    )


def _chunks(collection: Collection) -> list[StoredChunk]:
    return [chunk for page in collection.pages(1000, vectors=True) for chunk in page]


def _bare_encode(embedder: Embedder, texts: list[str]) -> float:
    started = time.monotonic()
    embedder.model.encode(
        texts, batch_size=embedder.batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return time.monotonic() - started
