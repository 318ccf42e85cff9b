"""Preparing the offline model: once, atomically, reused afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quarry.serve.model_prep import (
    COMPLETE_MARKER,
    PREPARED_VERSION,
    is_prepared,
    prepare_cpu_model,
    shipped_gguf,
)


def test_the_gguf_ships_with_the_cpu_extra() -> None:
    gguf = shipped_gguf()
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert gguf.stat().st_size > 50_000_000


def test_a_failed_conversion_leaves_nothing_behind(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    target = tmp_path / "models" / "broken-model"
    with pytest.raises(Exception):  # noqa: B017 - whatever the loader raises
        prepare_cpu_model(target, gguf=broken)
    assert not target.exists()
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_a_prepared_folder_is_reused(tmp_path: Path) -> None:
    target = tmp_path / "ready"
    target.mkdir()
    (target / COMPLETE_MARKER).write_text(json.dumps({"version": PREPARED_VERSION}))
    # A GGUF that does not exist would fail if conversion ran again.
    assert prepare_cpu_model(target, gguf=tmp_path / "absent.gguf") == target


def test_an_unfinished_folder_is_not_taken_for_a_model(tmp_path: Path) -> None:
    target = tmp_path / "half"
    target.mkdir()
    (target / "config.json").write_text("{}")
    assert not is_prepared(target)


def test_a_folder_from_an_older_conversion_is_made_again(tmp_path: Path) -> None:
    target = tmp_path / "old"
    target.mkdir()
    (target / COMPLETE_MARKER).write_text(json.dumps({"source": "x.gguf"}))  # no version
    assert not is_prepared(target)
    with pytest.raises(Exception):  # noqa: B017 - it converts again, from a GGUF not there
        prepare_cpu_model(target, gguf=tmp_path / "absent.gguf")


@pytest.mark.heavy  # converts the model with transformers
def test_the_prepared_config_names_the_model_class_vllm_serves() -> None:
    """vLLM picks its model class from `architectures`; without it, it guesses."""
    from quarry.settings import load_settings

    target = load_settings(profile="cpu").models_dir / "SmolLM2-135M-Instruct"
    prepare_cpu_model(target)
    config = json.loads((target / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["tie_word_embeddings"] is True
