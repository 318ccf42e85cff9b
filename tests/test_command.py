"""The vLLM command line each profile produces, checked without starting anything."""

from __future__ import annotations

import sys
from pathlib import Path

from typer.testing import CliRunner

from quarry.cli import app
from quarry.serve.command import build_command
from quarry.settings import load_settings


def test_gpu_profile_command_is_the_full_llama_3_command() -> None:
    command = build_command(load_settings(profile="gpu"), python="python")
    assert command.argv == [
        "python", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "meta-llama/Meta-Llama-3-8B-Instruct",
        "--served-model-name", "Meta-Llama-3-8B-Instruct",
        "--host", "127.0.0.1",
        "--port", "8000",
        "--dtype", "auto",
        "--max-model-len", "8192",
        "--enable-prefix-caching",
        "--gpu-memory-utilization", "0.9",
        "--tensor-parallel-size", "1",
        "--pipeline-parallel-size", "1",
        "--enable-auto-tool-choice",
        "--tool-call-parser", "llama3_json",
    ]  # fmt: skip
    assert command.env == {}


def test_gpu_overrides_reach_the_command() -> None:
    settings = load_settings(
        profile="gpu",
        server={
            "tensor_parallel_size": 4,
            "pipeline_parallel_size": 2,
            "quantization": "fp8",
            "chat_template": "/srv/llama3.jinja",
            "max_num_seqs": 64,
            "extra_args": ["--seed", "7"],
        },
    )
    argv = build_command(settings).argv
    for pair in (
        ["--tensor-parallel-size", "4"],
        ["--pipeline-parallel-size", "2"],
        ["--quantization", "fp8"],
        ["--chat-template", "/srv/llama3.jinja"],
        ["--max-num-seqs", "64"],
    ):
        index = argv.index(pair[0])
        assert argv[index : index + 2] == pair
    assert argv[-2:] == ["--seed", "7"]


def test_cpu_profile_sizes_the_kv_cache_through_the_environment(tmp_path: Path) -> None:
    settings = load_settings(profile="cpu", cache_dir=tmp_path, server={"kv_cache_space_gib": 3})
    command = build_command(settings)
    assert command.env == {"VLLM_CPU_KVCACHE_SPACE": "3"}
    assert "--enforce-eager" in command.argv
    assert "--enable-prefix-caching" in command.argv
    assert "--gpu-memory-utilization" not in command.argv
    assert command.argv[-3:] == ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    assert command.argv[command.argv.index("--model") + 1] == str(
        tmp_path / "models" / "SmolLM2-135M-Instruct"
    )


def test_prefix_caching_can_be_turned_off() -> None:
    settings = load_settings(profile="gpu", server={"enable_prefix_caching": False})
    assert "--no-enable-prefix-caching" in build_command(settings).argv


def test_api_key_never_appears_on_the_command_line() -> None:
    command = build_command(load_settings(profile="gpu", server={"api_key": "s3cret"}))
    assert "s3cret" not in " ".join(command.argv)
    assert "s3cret" not in command.shell()
    assert command.secret_env == {"VLLM_API_KEY": "s3cret"}
    assert command.shell().startswith("VLLM_API_KEY=$VLLM_API_KEY ")


def test_print_command_prints_without_starting() -> None:
    result = CliRunner().invoke(app, ["serve", "--profile", "gpu", "--print-command"])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith(f"{sys.executable} -m vllm.entrypoints.openai.api_server")
    assert "--model meta-llama/Meta-Llama-3-8B-Instruct" in line
    assert "--tool-call-parser llama3_json" in line


def test_serve_with_bad_flags_exits_2_naming_them() -> None:
    result = CliRunner().invoke(app, ["serve", "--profile", "tpu", "--port", "-5"])
    assert result.exit_code == 2
    assert "profile: Input should be 'cpu' or 'gpu'" in result.output
    assert "server.port" in result.output


def test_serve_with_a_missing_model_folder_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "weights"
    result = CliRunner().invoke(app, ["serve", "--profile", "gpu", "--model", str(missing)])
    assert result.exit_code == 2
    assert f"server.model: {missing} does not exist" in " ".join(result.output.split())
