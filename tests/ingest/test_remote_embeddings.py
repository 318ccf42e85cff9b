"""`embedding.endpoint`: chunks embedded by a real vLLM (CPU) serving all-MiniLM-L6-v2 with
its pooling runner, as a GPU box or a set of replicas would, agree with local vectors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from quarry.components import Components
from quarry.eval.server_metrics import free_port
from quarry.ingest.embedding import Embedder, EmbeddingModelError, embedding_model_path
from quarry.ingest.remote_embeddings import RemoteEmbeddingError, RemoteEncoder
from quarry.serve.process import ManagedProcess
from quarry.settings import SettingsError, load_settings
from tests.conftest import SERVER_START_TIMEOUT_S, stop_cleanly
from tests.ingest.conftest import write_corpus

pytestmark = [pytest.mark.heavy, pytest.mark.server]

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = [
    "Set QUARRY_SERVER_PORT to move the model server to another port.",
    "A bowline makes a fixed loop at the end of a line.",
    "PEP 8 recommends four spaces per indentation level.",
]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`vllm serve <model> --runner pooling`, as docs/ingest.md shows for a GPU box."""
    port = free_port()
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", embedding_model_path(MODEL),
        "--served-model-name", MODEL,
        "--runner", "pooling",
        "--port", str(port),
        "--dtype", "float32",
        "--max-model-len", "256",
        "--enforce-eager",
    ]  # fmt: skip
    server = ManagedProcess(
        argv,
        tmp_path_factory.mktemp("embedding-server") / "vllm.log",
        env={"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"},
        name="vLLM embeddings",
        health_url=f"http://127.0.0.1:{port}/health",
    ).start()
    server.wait_healthy(SERVER_START_TIMEOUT_S, interval_s=1)
    yield f"http://127.0.0.1:{port}/v1"
    stop_cleanly(server, port)


def test_remote_vectors_agree_with_local_ones(endpoint: str, embedder: Embedder) -> None:
    remote = RemoteEncoder(endpoint, MODEL, concurrency=3)
    vectors = remote.encode(TEXTS * 4, batch_size=2)  # six requests, three in flight
    local = embedder.encode(TEXTS * 4)
    assert vectors.shape == local.shape
    assert (vectors * local).sum(axis=1).min() >= 0.99


def test_ingest_through_the_endpoint_records_the_model(endpoint: str, tmp_path: Path) -> None:
    settings = load_settings(
        profile="cpu",
        data_dir=tmp_path / "data",
        embedding={"endpoint": endpoint, "batch_size": 8},
        ingest={"collection": "remote-built"},
    )
    assert settings.embedding.backend == "remote"
    components = Components(settings)
    report = components.ingest([write_corpus(tmp_path / "docs")])
    assert report.chunks_written > 0 and not report.failed
    collection = components.collection()
    assert (collection.model(), collection.backend()) == (MODEL, "remote")
    assert components.retriever().search("bowline loop", 1)[0].source == "sailing.rst"


def test_an_endpoint_serving_another_model_is_refused(endpoint: str) -> None:
    other = RemoteEncoder(endpoint, "intfloat/e5-small-v2")
    with pytest.raises(RemoteEmbeddingError, match=r"serves sentence-transformers/.*--served"):
        other.encode(TEXTS, 8)


def test_a_down_endpoint_and_a_missing_one_say_what_to_set() -> None:
    down = RemoteEncoder(f"http://127.0.0.1:{free_port()}/v1", MODEL)
    with pytest.raises(RemoteEmbeddingError, match=r"embedding\.endpoint"):
        down.encode(TEXTS, 8)
    with pytest.raises(SettingsError, match=r"embedding\.endpoint"):
        load_settings(profile="cpu", embedding={"backend": "remote"})
    with pytest.raises(EmbeddingModelError, match=r"embedding\.endpoint"):
        Embedder(MODEL, backend="remote")
