"""The exact vLLM command line and environment for a set of settings.

Kept free of side effects so that the GPU profile's command can be built and checked on a
machine without a GPU (`quarry serve --print-command`, and the tests).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field

from quarry.settings import QuarrySettings

VLLM_MODULE = "vllm.entrypoints.openai.api_server"


@dataclass(frozen=True)
class VllmCommand:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # Kept out of argv so the key never shows in `ps` or in a printed command.
    secret_env: dict[str, str] = field(default_factory=dict)

    def shell(self) -> str:
        """The command as a user would type it (secrets shown as variables)."""
        env = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        env += [f"{k}=${k}" for k in self.secret_env]
        return " ".join([*env, shlex.join(self.argv)])


def build_command(settings: QuarrySettings, python: str = sys.executable) -> VllmCommand:
    s = settings.server
    argv = [python, "-m", VLLM_MODULE, "--model", s.model]

    def opt(flag: str, value: object) -> None:
        if value is not None:
            argv.extend([flag, str(value)])

    opt("--served-model-name", s.served_model_name)
    opt("--host", s.host)
    opt("--port", s.port)
    opt("--dtype", s.dtype)
    opt("--max-model-len", s.max_model_len)
    opt("--quantization", s.quantization)
    opt("--max-num-seqs", s.max_num_seqs)
    opt("--chat-template", s.chat_template)
    argv.append(
        "--enable-prefix-caching" if s.enable_prefix_caching else "--no-enable-prefix-caching"
    )

    env: dict[str, str] = {}
    if settings.profile == "gpu":
        opt("--gpu-memory-utilization", s.gpu_memory_utilization)
        opt("--tensor-parallel-size", s.tensor_parallel_size)
        opt("--pipeline-parallel-size", s.pipeline_parallel_size)
    else:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(s.kv_cache_space_gib)
    if s.enforce_eager:
        argv.append("--enforce-eager")
    if s.enable_auto_tool_choice:
        argv.append("--enable-auto-tool-choice")
        opt("--tool-call-parser", s.tool_call_parser)
    argv.extend(s.extra_args)

    secret = {"VLLM_API_KEY": s.api_key} if s.api_key else {}
    return VllmCommand(argv=argv, env=env, secret_env=secret)
