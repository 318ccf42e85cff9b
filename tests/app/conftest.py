"""A sample collection (the project's own docs/) in a real embedded Chroma, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.retrieval import Retriever
from ingest.embedding import Embedder
from ingest.pipeline import ingest
from quarry.settings import QuarrySettings, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs"
SAMPLE = "sample-docs"


@pytest.fixture(scope="session")
def sample_settings(tmp_path_factory: pytest.TempPathFactory) -> QuarrySettings:
    return load_settings(
        profile="cpu", data_dir=tmp_path_factory.mktemp("app-data"), ingest={"collection": SAMPLE}
    )


@pytest.fixture(scope="session")
def sample_retriever(sample_settings: QuarrySettings, embedder: Embedder) -> Retriever:
    report = ingest([DOCS], sample_settings, embedder=embedder)
    assert not report.failed, report
    return Retriever.from_settings(sample_settings, SAMPLE, embedder=embedder)
