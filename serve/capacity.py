"""KV-cache and weight-size arithmetic, in vLLM's own terms.

vLLM allocates the KV cache in blocks of `block_size` tokens (16 on GPUs, 128 on the CPU
backend); a request of L tokens needs ceil(L / block_size) blocks, so the concurrency it
reports is blocks / blocks-per-request. Bytes per token are
2 (K and V) x layers x KV heads x head dim x dtype bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

GiB = 2**30
DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "fp8": 1}
BLOCK_SIZE = {"gpu": 16, "cpu": 128}
# What vLLM keeps on a GPU besides weights and KV cache (activations at profiling, CUDA graphs,
# the NCCL and cuBLAS workspaces). An estimate: vLLM measures it when it starts.
GPU_RUNTIME_OVERHEAD_BYTES = int(1.5 * GiB)


@dataclass(frozen=True)
class ModelGeometry:
    """The shape of a decoder-only transformer, as far as memory is concerned."""

    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelGeometry:
        text = config.get("text_config") or config
        heads = int(text["num_attention_heads"])
        hidden = int(text["hidden_size"])
        return cls(
            layers=int(text["num_hidden_layers"]),
            attention_heads=heads,
            kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or hidden // heads),
            hidden_size=hidden,
            intermediate_size=int(text["intermediate_size"]),
            vocab_size=int(text["vocab_size"]),
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        )

    def parameters(self) -> int:
        """Parameter count of a Llama-style model (attention, gated MLP, norms, embeddings)."""
        h, d = self.hidden_size, self.head_dim
        attention = h * self.attention_heads * d * 2 + h * self.kv_heads * d * 2
        mlp = 3 * h * self.intermediate_size
        per_layer = attention + mlp + 2 * h
        embeddings = self.vocab_size * h * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embeddings + h


# Meta-Llama-3-8B-Instruct's config.json, for machines that cannot fetch it (gated weights).
LLAMA_3_8B = ModelGeometry(
    layers=32,
    attention_heads=32,
    kv_heads=8,
    head_dim=128,
    hidden_size=4096,
    intermediate_size=14336,
    vocab_size=128256,
    tied_embeddings=False,
)


def dtype_bytes(dtype: str | None, config_dtype: str | None = None) -> int:
    """Bytes per element; `auto` means the dtype the checkpoint was saved in (bf16 if unknown)."""
    name = (dtype or "auto").lower()
    if name == "auto":
        name = (config_dtype or "bfloat16").lower()
    name = name.removeprefix("torch.")
    if name not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[name]


def kv_bytes_per_token(geometry: ModelGeometry, element_bytes: int) -> int:
    return 2 * geometry.layers * geometry.kv_heads * geometry.head_dim * element_bytes


@dataclass(frozen=True)
class KvCapacity:
    bytes_per_token: int
    kv_cache_bytes: int
    block_size: int
    model_len: int

    @property
    def blocks(self) -> int:
        return self.kv_cache_bytes // (self.bytes_per_token * self.block_size)

    @property
    def tokens(self) -> int:
        return self.blocks * self.block_size

    @property
    def max_concurrency(self) -> float:
        return self.blocks / math.ceil(self.model_len / self.block_size)

    def concurrency_at(self, context_len: int) -> float:
        return self.blocks / math.ceil(context_len / self.block_size)

    def vllm_line(self) -> str:
        """The same sentence vLLM logs at start-up, so the two can be compared by eye."""
        return (
            f"KV cache size: {self.tokens:,} tokens; Maximum concurrency for "
            f"{self.model_len:,} tokens per request: {self.max_concurrency:.2f}x"
        )


def gpu_kv_cache_bytes(
    device_memory_bytes: int,
    memory_utilization: float,
    weight_bytes_per_device: int,
    overhead_bytes: int = GPU_RUNTIME_OVERHEAD_BYTES,
) -> int:
    """Memory vLLM can give the KV cache on one GPU: its budget minus weights and runtime."""
    budget = int(device_memory_bytes * memory_utilization)
    return max(budget - weight_bytes_per_device - overhead_bytes, 0)
