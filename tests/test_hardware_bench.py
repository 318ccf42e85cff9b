"""The hardware benchmark: its arithmetic, and every CPU path run for real (small sizes)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from quarry.cli import app
from quarry.serve.hardware_bench import (
    RATED_BANDWIDTH_GBS,
    RATED_TFLOPS,
    BenchReport,
    add_implications,
    bus_bandwidth,
    decode_ceiling,
    matmul_tflops,
    rated,
    run_bench,
)


def test_matmul_flops_count_a_multiply_and_an_add() -> None:
    # 4096^3 GEMM in 0.139 ms is 989 TFLOP/s, the H100's rated bf16 dense peak.
    assert matmul_tflops(4096, 4096, 4096, 2 * 4096**3 / 989e12) == pytest.approx(989.0)
    assert matmul_tflops(2, 3, 4, 1.0) == 48 / 1e12


def test_ring_all_reduce_bus_bandwidth() -> None:
    algorithm, bus = bus_bandwidth(1_000_000_000, 1.0, 8)
    assert algorithm == 1.0 and bus == pytest.approx(1.75)  # 2 * (n - 1) / n
    assert bus_bandwidth(10**9, 0.5, 2) == (2.0, 2.0)


def test_decode_ceiling_is_bandwidth_over_weights() -> None:
    # Llama-3-8B in bf16 (16.06 GB) on an H100 SXM (3.35 TB/s): at most ~209 tokens/s.
    assert decode_ceiling(3350, 16.06e9) == pytest.approx(208.6, rel=1e-3)


def test_rated_figures_follow_the_device_name() -> None:
    assert rated(RATED_TFLOPS, "NVIDIA H100 80GB HBM3")["bfloat16"] == 989.0
    assert rated(RATED_BANDWIDTH_GBS, "NVIDIA A100-SXM4-80GB") == 2039.0
    assert rated(RATED_TFLOPS, "CPU") is None


def test_implications_split_weights_over_tensor_parallel_gpus() -> None:
    report = BenchReport(device="x", implications={"memory_bandwidth_gbs": 3350.0})
    add_implications(report, 16e9, {"users_at_4k": 30.0, "users_at_8k": 15.0}, tensor_parallel=2)
    assert report.implications["weights_gb_per_device"] == 8.0
    assert report.implications["decode_ceiling_tokens_per_s"] == pytest.approx(418.8, rel=1e-3)
    assert report.implications["concurrent_users_at_8k"] == 15.0


@pytest.mark.heavy  # real torch kernels
def test_every_cpu_path_runs_and_says_what_it_skipped() -> None:
    report = run_bench(quick=True)
    assert report.device == "CPU"
    assert {m.name for m in report.matmul} == {
        "matmul bfloat16 256x256x256",
        "matmul float32 256x256x256",
    }
    assert all(m.value > 0 for m in report.matmul + report.bandwidth + report.all_reduce)
    assert report.all_reduce[0].name == "all_reduce sum, 1 MiB, 2 ranks (gloo)"
    assert any("peer-to-peer" in s for s in report.skipped)
    assert any("host<->device" in s for s in report.skipped)


@pytest.mark.heavy
def test_doctor_bench_json_is_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("quarry.serve.hardware_bench.run_bench", lambda: run_bench(quick=True))
    result = CliRunner().invoke(app, ["doctor", "--profile", "cpu", "--bench", "--json"])
    data = json.loads(result.output)
    bench = data["facts"]["bench"]
    assert bench["matmul"] and bench["bandwidth"] and bench["all_reduce"]
    assert "memory_bandwidth_gbs" in bench["implications"]
