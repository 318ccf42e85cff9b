"""The embedding backends against PyTorch float32: same vectors (within the quality gate),
the openvino graph converted once and reused, and a collection that keeps its backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from quarry.cli import app
from quarry.components import Components
from quarry.ingest.embedding import Embedder
from quarry.settings import load_settings
from tests.ingest.conftest import write_corpus

pytestmark = pytest.mark.heavy

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = [
    "Set QUARRY_SERVER_PORT to move the model server to another port.",
    "A bowline makes a fixed loop at the end of a line.",
    "PEP 8 recommends four spaces per indentation level.",
    "short",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedding-cache")


def test_fast_backends_agree_with_pytorch(embedder: Embedder, cache: Path) -> None:
    reference = embedder.encode(TEXTS)
    for backend in ("bf16", "openvino"):
        vectors = Embedder(MODEL, backend=backend, cache_dir=cache).encode(TEXTS)
        assert vectors.shape == reference.shape
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        assert (vectors * reference).sum(axis=1).min() >= 0.99, backend
    question = Embedder(MODEL, backend="openvino", cache_dir=cache).encode(TEXTS[:1])
    assert float(question[0] @ reference[0]) >= 0.99  # one text: the one-thread model


def test_the_openvino_graph_is_converted_once_and_reused(cache: Path) -> None:
    first = Embedder(MODEL, backend="openvino", cache_dir=cache)
    first.encode(["warm"])
    graphs = sorted(cache.rglob("model.*"))
    assert graphs and not [p for p in cache.rglob("*") if p.name.startswith(".")]  # no temps
    stamps = [p.stat().st_mtime_ns for p in graphs]
    Embedder(MODEL, backend="openvino", cache_dir=cache).encode(["again"])
    assert [p.stat().st_mtime_ns for p in graphs] == stamps


def test_a_collection_keeps_its_backend(tmp_path: Path, embedder: Embedder, cache: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    settings = load_settings(
        profile="cpu",
        data_dir=tmp_path / "data",
        cache_dir=cache,
        embedding={"backend": "openvino"},
        ingest={"collection": "openvino-built"},
    )
    components = Components(settings)
    report = components.ingest([docs])
    assert report.chunks_written > 0
    assert components.collection().backend() == "openvino"

    # Configured for another backend later: queries and new files use the collection's.
    later = Components(
        settings.model_copy(
            update={"embedding": settings.embedding.model_copy(update={"backend": "torch"})}
        ),
        embedders=[embedder],
    )
    retriever = later.retriever()
    assert retriever.embedder.backend == "openvino"
    assert retriever.search("bowline loop", 1)[0].source == "sailing.rst"


def test_bench_ingest_prints_every_backend_beside_pytorch(tmp_path: Path, cache: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    result = CliRunner().invoke(
        app,
        ["bench", "ingest", str(docs), "--limit", "4"],
        env={
            "QUARRY_CACHE_DIR": str(cache),
            "QUARRY_DATA_DIR": str(tmp_path / "data"),
            "COLUMNS": "200",  # the table's backend names unabridged
        },
    )
    assert result.exit_code == 0, result.output
    for backend in ("torch", "bf16", "openvino"):
        assert backend in result.output
    assert "bare PyTorch encode" in result.output
    assert "Unchanged re-run" in result.output
