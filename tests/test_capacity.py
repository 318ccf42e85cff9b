"""KV-cache arithmetic against the numbers vLLM itself reports."""

from __future__ import annotations

import pytest

from quarry.serve.capacity import (
    BLOCK_SIZE,
    LLAMA_3_8B,
    GiB,
    KvCapacity,
    ModelGeometry,
    dtype_bytes,
    gpu_kv_cache_bytes,
    kv_bytes_per_token,
)
from quarry.serve.process import parse_capacity

SMOLLM2_135M = ModelGeometry(
    layers=30,
    attention_heads=9,
    kv_heads=3,
    head_dim=64,
    hidden_size=576,
    intermediate_size=1536,
    vocab_size=49152,
    tied_embeddings=True,
)


def test_llama_3_8b_bf16_needs_131072_bytes_per_token() -> None:
    assert kv_bytes_per_token(LLAMA_3_8B, dtype_bytes("bfloat16")) == 131_072


def test_vllm_log_for_llama_3_8b_follows_from_bytes_per_token() -> None:
    # vLLM: "GPU KV cache size: 122,880 tokens ... Maximum concurrency for 4,096 tokens per
    # request: 30.00x". 122,880 tokens x 131,072 bytes is exactly 15 GiB of KV cache.
    capacity = KvCapacity(131_072, 15 * GiB, BLOCK_SIZE["gpu"], 4096)
    assert capacity.tokens == 122_880
    assert f"{capacity.max_concurrency:.2f}" == "30.00"
    assert capacity.vllm_line() == (
        "KV cache size: 122,880 tokens; Maximum concurrency for 4,096 tokens per request: 30.00x"
    )


def test_cpu_backend_log_for_smollm2_follows_from_its_geometry() -> None:
    # Measured here: VLLM_CPU_KVCACHE_SPACE=2 gave "CPU KV cache size: 93,184 tokens,
    # Maximum concurrency for 2,048 tokens per request: 45.50x".
    per_token = kv_bytes_per_token(SMOLLM2_135M, dtype_bytes("bfloat16"))
    assert per_token == 23_040
    capacity = KvCapacity(per_token, 2 * GiB, BLOCK_SIZE["cpu"], 2048)
    assert capacity.tokens == 93_184
    assert capacity.max_concurrency == pytest.approx(45.50)


def test_partial_blocks_count_whole_per_request() -> None:
    capacity = KvCapacity(1024, 1024 * 16 * 10, 16, 20)  # 10 blocks; 20 tokens need 2
    assert capacity.tokens == 160
    assert capacity.max_concurrency == 5
    assert capacity.concurrency_at(16) == 10


def test_tensor_parallel_splits_kv_heads_across_gpus() -> None:
    # With TP=2 each GPU stores half the KV heads: twice the tokens for the same bytes.
    single = KvCapacity(131_072, 10 * GiB, 16, 8192)
    split = KvCapacity(131_072 // 2, 10 * GiB, 16, 8192)
    assert split.tokens == 2 * single.tokens


def test_parameter_count_of_llama_3_8b() -> None:
    assert LLAMA_3_8B.parameters() == pytest.approx(8.03e9, rel=0.005)
    assert SMOLLM2_135M.parameters() == pytest.approx(134.5e6, rel=0.01)


def test_geometry_reads_a_hf_config() -> None:
    config = {
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "vocab_size": 128256,
    }
    assert ModelGeometry.from_config(config) == LLAMA_3_8B


def test_dtype_auto_follows_the_checkpoint() -> None:
    assert dtype_bytes("auto", "float32") == 4
    assert dtype_bytes("auto", None) == 2
    assert dtype_bytes("float16") == 2
    with pytest.raises(ValueError, match="unknown dtype 'int3'"):
        dtype_bytes("int3")


def test_gpu_budget_subtracts_weights_and_runtime() -> None:
    kv = gpu_kv_cache_bytes(80 * GiB, 0.9, 15 * GiB, overhead_bytes=2 * GiB)
    assert kv == int(80 * GiB * 0.9) - 17 * GiB
    assert gpu_kv_cache_bytes(16 * GiB, 0.9, 15 * GiB) == 0


def test_parse_capacity_reads_both_log_formats() -> None:
    cpu = (
        "(EngineCore pid=1) INFO [kv_cache_utils.py:2327] CPU KV cache size: 93,184 tokens, "
        "Maximum concurrency for 2,048 tokens per request: 45.50x"
    )
    gpu = (
        "INFO [kv_cache_utils.py:716] GPU KV cache size: 122,880 tokens\n"
        "INFO [kv_cache_utils.py:720] Maximum concurrency for 4,096 tokens per request: 30.00x"
    )
    parsed_cpu, parsed_gpu = parse_capacity(cpu), parse_capacity(gpu)
    assert parsed_cpu is not None and parsed_gpu is not None
    assert (parsed_cpu.kv_cache_tokens, parsed_cpu.model_len) == (93_184, 2048)
    assert (parsed_gpu.kv_cache_tokens, parsed_gpu.max_concurrency) == (122_880, 30.0)
    assert parse_capacity("nothing here") is None
