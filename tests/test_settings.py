"""The settings tree: profiles, sources and their priority, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from quarry.serve.launch import prepared_chat_model
from quarry.settings import (
    CPU_MODEL,
    GPU_MODEL,
    Hardware,
    SettingsError,
    default_cpu_kv_cache_gib,
    default_tensor_parallel_size,
    load_settings,
)


def test_cpu_profile_defaults(tmp_path: Path) -> None:
    s = load_settings(profile="cpu", cache_dir=tmp_path)
    assert s.server.model == str(tmp_path / "models" / CPU_MODEL)
    assert s.server.served_model_name == CPU_MODEL
    assert s.server.enable_prefix_caching is True
    assert s.server.enforce_eager is True
    assert s.server.kv_cache_space_gib is not None and s.server.kv_cache_space_gib >= 1
    assert (s.server.enable_auto_tool_choice, s.server.tool_call_parser) == (True, "hermes")
    assert s.chat.use_tools is False  # the small model retrieves first


def test_gpu_profile_defaults() -> None:
    s = load_settings(profile="gpu")
    assert s.server.model == GPU_MODEL
    assert s.server.max_model_len == 8192
    assert s.server.gpu_memory_utilization == 0.90
    assert s.server.tool_call_parser == "llama3_json"
    assert s.server.enable_auto_tool_choice is True
    assert s.server.dtype == "auto"
    assert s.server.tensor_parallel_size == 1  # no GPU visible here


def test_embedding_backend_follows_the_machine() -> None:
    cpu_only, with_gpu = Hardware(gpus=0, memory_bytes=2**34), Hardware(gpus=1, memory_bytes=2**34)
    assert load_settings(hardware=cpu_only).embedding.backend == "openvino"
    assert load_settings(hardware=with_gpu).embedding.backend == "torch"  # on the GPU
    assert load_settings(hardware=with_gpu, embedding={"device": "cpu"}).embedding.backend == (
        "openvino"
    )
    chosen = load_settings(hardware=cpu_only, embedding={"backend": "bf16"})
    assert chosen.embedding.backend == "bf16"
    remote = load_settings(hardware=cpu_only, embedding={"endpoint": "http://127.0.0.1:1/v1"})
    assert remote.embedding.backend == "remote"


def test_flags_beat_environment_beat_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "quarry.toml").write_text(
        'profile = "gpu"\n[server]\nport = 7000\nmax_model_len = 4096\ndtype = "float16"\n'
    )
    monkeypatch.setenv("QUARRY_SERVER_PORT", "7100")
    monkeypatch.setenv("QUARRY_SERVER_MAX_MODEL_LEN", "2048")
    s = load_settings(server={"port": 7200})
    assert s.profile == "gpu"  # from the file
    assert s.server.dtype == "float16"  # file over profile default
    assert s.server.max_model_len == 2048  # environment over file
    assert s.server.port == 7200  # flag over environment


def test_config_file_from_quarry_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text("[chroma]\nhost = 'chroma.internal'\nport = 9000\n")
    monkeypatch.setenv("QUARRY_CONFIG", str(config))
    s = load_settings(profile="cpu")
    assert (s.chroma.host, s.chroma.port) == ("chroma.internal", 9000)


def test_missing_config_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARRY_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(SettingsError, match=r"QUARRY_CONFIG points to .*nope\.toml"):
        load_settings(profile="cpu")


def test_unknown_profile_is_a_clear_error() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(profile="tpu")
    message = str(err.value)
    assert "profile" in message and "'cpu' or 'gpu'" in message and "'tpu'" in message
    assert "QUARRY_PROFILE" in message


def test_negative_port_names_the_setting_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARRY_SERVER_PORT", "-1")
    with pytest.raises(SettingsError) as err:
        load_settings(profile="cpu")
    assert "server.port" in str(err.value)
    assert "QUARRY_SERVER_PORT" in str(err.value)
    assert "greater than or equal to 1" in str(err.value)


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    (tmp_path / "quarry.toml").write_text("[server]\nmax_model_length = 10\n")
    with pytest.raises(SettingsError, match=r"server\.max_model_length: Extra inputs"):
        load_settings(profile="cpu")


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    s = load_settings(profile="gpu", server={"model": str(tmp_path / "no-such-model")})
    with pytest.raises(SettingsError, match=r"server\.model: .*no-such-model does not exist"):
        prepared_chat_model(s)


def test_hub_id_is_not_mistaken_for_a_path() -> None:
    s = load_settings(profile="gpu", server={"model": "meta-llama/Meta-Llama-3-8B-Instruct"})
    assert prepared_chat_model(s) == "meta-llama/Meta-Llama-3-8B-Instruct"


@pytest.mark.parametrize(
    ("gpus", "heads", "expected"),
    [(0, 32, 1), (1, 32, 1), (2, 32, 2), (3, 32, 2), (4, 32, 4), (8, 32, 8), (6, 9, 3)],
)
def test_tensor_parallel_divides_attention_heads(gpus: int, heads: int, expected: int) -> None:
    assert default_tensor_parallel_size(gpus, heads) == expected


def test_cpu_kv_cache_fits_the_machine() -> None:
    assert default_cpu_kv_cache_gib(4 * 2**30) == 1
    assert default_cpu_kv_cache_gib(24 * 2**30) == 2
    assert default_cpu_kv_cache_gib(512 * 2**30) == 8
