"""The serving benchmark's arithmetic, checked by hand on a recorded run, and its reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quarry.eval.serving import (
    LevelMetrics,
    RequestRecord,
    Sweep,
    concurrency_levels,
    level_metrics,
    percentile,
    ratios,
    requests_for,
    saturation_index,
    workloads,
    write_comparison,
    write_reports,
)

RECORDED = Path(__file__).with_name("recorded_serve_run.json")


def recorded() -> tuple[int, list[RequestRecord], float]:
    data = json.loads(RECORDED.read_text())
    return data["concurrency"], [RequestRecord(**r) for r in data["records"]], data["duration_s"]


def test_throughput_on_the_recorded_run() -> None:
    metrics = level_metrics(*recorded())
    assert (metrics.requests, metrics.completed, metrics.failed) == (4, 4, 0)
    assert metrics.request_throughput == pytest.approx(4 / 3.226)  # 1.240 req/s
    assert metrics.output_throughput == pytest.approx(16 / 3.226)  # 4 x 4 tokens: 4.960 tok/s
    # (1491 + 1489 + 1488 + 1488 prompt + 16 output) / 3.226 s
    assert metrics.total_token_throughput == pytest.approx(5972 / 3.226)
    assert metrics.mean_prompt_tokens == 1489
    assert metrics.mean_output_tokens == 4


def test_latency_percentiles_on_the_recorded_run() -> None:
    """numpy's linear interpolation: p at position (n - 1) * p / 100 of the sorted values."""
    m = level_metrics(*recorded())
    # TTFT sorted: 0.342 0.346 0.564 2.341; p50 at 1.5, p99 at 2.97.
    assert m.ttft_p50_ms == pytest.approx(455.0)  # (346 + 564) / 2
    assert m.ttft_p99_ms == pytest.approx(564 + 0.97 * (2341 - 564))  # 2287.69
    assert m.ttft_mean_ms == pytest.approx(3593 / 4)
    # TPOT = (latency - TTFT) / 3 per request: 704.667 56.333 123.333 47.667 ms.
    assert m.tpot_p50_ms == pytest.approx((169 + 370) / 6)  # 89.833
    assert m.tpot_p99_ms == pytest.approx((370 + 0.97 * (2114 - 370)) / 3)  # 687.227
    assert m.tpot_mean_ms == pytest.approx(2796 / 12)  # 233
    # ITL: the 12 gaps pooled; sorted 40 47 47 48 49 51 52 54 65 73 268 2002 ms.
    assert m.itl_p50_ms == pytest.approx(51.5)  # position 5.5
    assert m.itl_p99_ms == pytest.approx(268 + 0.89 * (2002 - 268))  # position 10.89: 1811.26
    assert m.itl_mean_ms == pytest.approx(2796 / 12)
    # E2EL sorted: 0.707 0.712 2.460 2.510.
    assert m.e2el_p50_ms == pytest.approx(1586.0)
    assert m.e2el_p99_ms == pytest.approx(2460 + 0.97 * 50)  # 2488.5


def test_failed_and_one_token_requests() -> None:
    """A failed request counts in `failed` only; a one-token answer has TTFT but no TPOT."""
    ok = RequestRecord(0.0, 0.1, [0.05, 0.05], 0.2, 10, 3)
    one = RequestRecord(0.0, 0.3, [], 0.3, 10, 1)
    failed = RequestRecord(0.0, None, [], 0.0, 0, 0, error="APIConnectionError: refused")
    m = level_metrics(3, [ok, one, failed], duration_s=2.0)
    assert (m.completed, m.failed) == (2, 1)
    assert m.request_throughput == pytest.approx(1.0)
    assert m.output_throughput == pytest.approx(2.0)  # 4 tokens over 2 s
    assert m.ttft_p50_ms == pytest.approx(200.0)
    assert m.tpot_p50_ms == pytest.approx(50.0)  # only `ok`: (0.2 - 0.1) / 2
    nothing = level_metrics(1, [failed], duration_s=1.0)
    assert (nothing.completed, nothing.ttft_p99_ms, nothing.output_throughput) == (0, 0.0, 0.0)


def test_percentile_matches_numpy_linear_interpolation() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) == 0.0


@pytest.mark.parametrize(
    ("throughputs", "expected"),
    [
        ([10.0, 19.0, 30.0, 31.0], 2),  # 31 is under 30 * 1.05: saturated at the third level
        ([10.0, 10.4], 0),  # the first doubling already gains under 5%
        ([10.0, 9.0], 0),  # falling counts as not rising
        ([10.0, 20.0, 40.0], None),  # still rising: sweep on (or hit the cap)
        ([10.0], None),
        ([10.0, 10.6], None),  # 6% is still a gain
        ([10.0, 20.0, 15.0, 40.0], 1),  # a dip ends the sweep at the best level so far
    ],
)
def test_saturation(throughputs: list[float], expected: int | None) -> None:
    assert saturation_index(throughputs) == expected


def test_levels_and_request_counts() -> None:
    assert concurrency_levels(1) == [1]
    assert concurrency_levels(8) == [1, 2, 4, 8]
    assert concurrency_levels(12) == [1, 2, 4, 8, 12]
    assert requests_for(1, 16) == 16
    assert requests_for(16, 16) == 32  # two waves at least


def test_workload_shapes() -> None:
    rag, chat = workloads("both")
    assert (rag.name, rag.output_tokens, chat.name, chat.output_tokens) == ("rag", 64, "chat", 128)
    first, second = rag.messages(0), rag.messages(1)
    assert first[0] == second[0] and first[0]["role"] == "system"  # the shared prefix
    assert 4_000 < len(first[0]["content"]) < 6_000 and first[1] != second[1]
    assert [m["role"] for m in chat.messages(0)] == ["user"]
    assert [w.output_tokens for w in workloads("chat", output_tokens=8)] == [8]


def level(concurrency: int, throughput: float, ttft: float = 100.0) -> LevelMetrics:
    base = level_metrics(*recorded())
    base.concurrency, base.output_throughput, base.ttft_p50_ms = concurrency, throughput, ttft
    return base


def sample_sweep(name: str = "rag") -> Sweep:
    sweep = Sweep(name, "recorded", 4, [level(1, 5.0), level(2, 9.0), level(4, 9.2)])
    sweep.records = {2: recorded()[1]}
    sweep.settle()
    return sweep


def test_reports_are_written(tmp_path: Path) -> None:
    sweep = sample_sweep()
    assert sweep.saturation_concurrency == 2
    paths = write_reports([sweep], {"base_url": "http://x", "model": "m"}, tmp_path)
    assert [p.name for p in paths] == ["bench-serve.json", "bench-serve.md", "bench-serve.png"]
    data = json.loads(paths[0].read_text())
    rag = data["workloads"]["rag"]
    assert rag["saturation_concurrency"] == 2 and len(rag["records"]["2"]) == 4
    assert [lv["output_throughput"] for lv in rag["levels"]] == [5.0, 9.0, 9.2]
    text = paths[1].read_text()
    assert "| concurrency | requests | req/s | output tok/s | TTFT p50 ms |" in text
    assert "| 2 (saturates) | 4 | 1.24 | 9.0 | 100 |" in text
    assert "Throughput saturates at concurrency 2 (9.0 output tok/s)" in text
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prefix_caching_ratios_and_report(tmp_path: Path) -> None:
    on = Sweep("rag", "recorded", 4, [level(1, 6.0, ttft=50.0), level(2, 12.0, ttft=80.0)])
    off = Sweep("rag", "recorded", 4, [level(1, 4.0, ttft=200.0), level(2, 8.0, ttft=400.0)])
    rows = ratios(on, off)
    assert [(r["ttft_p50_ratio"], r["output_throughput_ratio"]) for r in rows] == [
        (0.25, 1.5),
        (0.2, 1.5),
    ]
    paths = write_comparison({"rag": {"on": on, "off": off}}, {"model": "m"}, tmp_path)
    assert json.loads(paths[0].read_text())["workloads"]["rag"]["ratios"] == rows
    assert "| 1 | 50 / 200 | 0.25 | 6.0 / 4.0 | 1.50 |" in paths[1].read_text()
    assert paths[2].read_bytes()[:4] == b"\x89PNG"
