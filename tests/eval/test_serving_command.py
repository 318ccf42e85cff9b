"""`quarry bench serve` end to end: a tiny sweep against the real CPU server, and usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from quarry.eval.server_metrics import free_port
from quarry.eval.serving_cli import register
from tests.conftest import TEST_MAX_MODEL_LEN, RunningServer

runner = CliRunner()


def bench_cli() -> typer.Typer:
    """A `quarry`-shaped app holding only the bench group that `register` fills."""
    app = typer.Typer()
    bench_app = typer.Typer()
    app.add_typer(bench_app, name="bench")
    register(bench_app)
    return app


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    app = bench_cli()
    down = f"http://127.0.0.1:{free_port()}"
    for args, message in [
        (["--workload", "poems"], "'poems': choose one of rag, chat, both"),
        (["--base-url", "ftp://x:1"], "give the server as http://HOST:PORT"),
        (["--compare-prefix-caching", "--base-url", down], "leave out --base-url"),
        (["--base-url", down], f"No model server answers at {down}"),
    ]:
        result = runner.invoke(app, ["bench", "serve", *args, "--output", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.replace("│", " ").split())  # unwrap rich's box
    assert not list(tmp_path.iterdir())


@pytest.mark.server
def test_sweep_against_the_real_server(vllm_server: RunningServer, tmp_path: Path) -> None:
    args = ["--base-url", vllm_server.base_url, "--requests", "2", "--max-concurrency", "2"]
    args += ["--output-tokens", "4", "--output", str(tmp_path)]
    result = runner.invoke(bench_cli(), ["bench", "serve", *args])
    assert result.exit_code == 0, result.output

    data = json.loads((tmp_path / "bench-serve.json").read_text())
    assert data["meta"]["model"] == vllm_server.model
    for name, prompt_range in [("rag", (1_000, TEST_MAX_MODEL_LEN)), ("chat", (10, 100))]:
        sweep = data["workloads"][name]
        assert [lv["concurrency"] for lv in sweep["levels"]] == [1, 2]
        assert [lv["requests"] for lv in sweep["levels"]] == [2, 4]
        for lv in sweep["levels"]:
            assert lv["failed"] == 0 and lv["mean_output_tokens"] == 4  # ignore_eos: exactly 4
            assert prompt_range[0] < lv["mean_prompt_tokens"] < prompt_range[1]
            assert lv["ttft_p99_ms"] >= lv["ttft_p50_ms"] > 0
            assert lv["itl_p99_ms"] >= lv["itl_p50_ms"] > 0
            assert lv["output_throughput"] == pytest.approx(lv["request_throughput"] * 4)
        records = [r for rs in sweep["records"].values() for r in rs]
        assert all(0 < len(r["itl_s"]) <= 3 for r in records)  # 4 tokens, in 2 to 4 chunks
    # The RAG prefix is shared, so the server's own counters show it cached after warm-up.
    assert data["workloads"]["rag"]["levels"][0]["prefix_cache_hit_rate"] > 0.8

    text = (tmp_path / "bench-serve.md").read_text()
    assert text.count("| concurrency | requests | req/s | output tok/s |") == 2
    assert (tmp_path / "bench-serve.png").read_bytes()[:4] == b"\x89PNG"
    assert "Reports:" in result.output
