"""Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint: vLLM's pooling runner
serving the collection's model on a GPU, or several replicas behind a load balancer.

Batches go out several at a time (`embedding.concurrency`), so replicas work in parallel and
one machine's GPU is kept busy while the next request is on the wire. The endpoint must serve
the model the collection records: its name is checked against `/v1/models` before anything is
embedded, so vectors of two models never share a collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np


class RemoteEmbeddingError(RuntimeError):
    """The endpoint cannot embed as asked; the message names it and what to check."""


class RemoteEncoder:
    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 4,
        timeout_s: float = 120,
    ) -> None:
        self.base = endpoint.rstrip("/").removesuffix("/v1")
        self.model = model
        self.concurrency = concurrency
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base, headers=headers, timeout=timeout_s)
        self._checked = False

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in order."""
        self._check_model()
        batches = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="quarry-remote") as pool:
            parts = list(pool.map(self._embed, batches))
        vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)

    def _embed(self, batch: list[str]) -> np.ndarray:
        try:
            response = self._client.post(
                "/v1/embeddings", json={"model": self.model, "input": batch}
            )
        except httpx.HTTPError as exc:
            raise RemoteEmbeddingError(
                f"cannot reach the embedding endpoint {self.base} ({type(exc).__name__}); is it "
                "running? (embedding.endpoint)"
            ) from None
        if response.status_code != 200:
            raise RemoteEmbeddingError(
                f"the embedding endpoint {self.base} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        rows = sorted(response.json()["data"], key=lambda row: row["index"])
        return np.asarray([row["embedding"] for row in rows], dtype=np.float32)

    def _check_model(self) -> None:
        if self._checked:
            return
        try:
            served = [m["id"] for m in self._client.get("/v1/models").json().get("data", [])]
        except (httpx.HTTPError, ValueError) as exc:
            raise RemoteEmbeddingError(
                f"cannot list the models of the embedding endpoint {self.base} "
                f"({type(exc).__name__}); is it running? (embedding.endpoint)"
            ) from None
        if self.model not in served:
            raise RemoteEmbeddingError(
                f"the embedding endpoint {self.base} serves {', '.join(served) or 'no model'}, "
                f"not {self.model!r} (embedding.model): serve it under that name "
                f"(vllm serve ... --served-model-name {self.model})"
            )
        self._checked = True
