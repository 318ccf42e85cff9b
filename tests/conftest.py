"""Shared fixtures: a real vLLM server on the CPU profile, started once per test session.

The server is started through `quarry serve` itself, in a subprocess, the way a user starts
it; the fixture waits for its "ready" line, and stops it with Ctrl-C (SIGINT) at the end,
checking that it shut down cleanly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from quarry.app.retrieval import Retriever
from quarry.eval.server_metrics import free_port
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.settings import QuarrySettings, load_settings

SERVER_START_TIMEOUT_S = 600
# Small enough to start fast on two cores, large enough for a long shared prefix.
TEST_MAX_MODEL_LEN = 2048
TEST_KV_CACHE_GIB = 1


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No QUARRY_* variables or quarry.toml from the developer's shell leak into a test."""
    for name in list(os.environ):
        if name.startswith("QUARRY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The offline all-MiniLM-L6-v2, loaded once for the whole session."""
    model = Embedder("sentence-transformers/all-MiniLM-L6-v2", batch_size=32)
    model.encode(["warm"])
    return model


DOCS = Path(__file__).resolve().parents[1] / "docs"
SAMPLE = "sample-docs"


@pytest.fixture(scope="session")
def sample_settings(tmp_path_factory: pytest.TempPathFactory) -> QuarrySettings:
    """Settings whose data folder holds the sample collection: the project's own docs/."""
    return load_settings(
        profile="cpu", data_dir=tmp_path_factory.mktemp("app-data"), ingest={"collection": SAMPLE}
    )


@pytest.fixture(scope="session")
def sample_retriever(sample_settings: QuarrySettings, embedder: Embedder) -> Retriever:
    report = ingest([DOCS], sample_settings, embedder=embedder)
    assert not report.failed, report
    return Retriever.from_settings(sample_settings, SAMPLE, embedder=embedder)


@dataclass
class RunningServer:
    settings: QuarrySettings
    env: dict[str, str]
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.settings.server.base_url

    @property
    def model(self) -> str:
        return str(self.settings.server.served_model_name)

    @property
    def printed(self) -> str:
        return "".join(self.output)


def server_env(data_dir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "QUARRY_PROFILE": "cpu",
        "QUARRY_DATA_DIR": str(data_dir),
        "QUARRY_SERVER_PORT": str(port),
        "QUARRY_SERVER_MAX_MODEL_LEN": str(TEST_MAX_MODEL_LEN),
        "QUARRY_SERVER_KV_CACHE_SPACE_GIB": str(TEST_KV_CACHE_GIB),
        "COLUMNS": "200",
        "PYTHONUNBUFFERED": "1",
    }


def _ctrl_c_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_quarry_serve(
    env: dict[str, str], *args: str
) -> tuple[subprocess.Popen[str], list[str], threading.Thread]:
    """Run `quarry serve`; its output lines are collected by the returned thread."""
    process = subprocess.Popen(
        [sys.executable, "-m", "quarry.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        # A shell's background job ignores Ctrl-C, and children inherit that; the Ctrl-C tests
        # need the signal delivered as a user's terminal would.
        preexec_fn=_ctrl_c_default,
    )
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return process, output, reader


def wait_until_ready(
    process: subprocess.Popen[str], output: list[str], reader: threading.Thread
) -> None:
    """Until `quarry serve` prints its ready line; a clear failure if it exits or hangs."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not any("vLLM is ready" in line for line in output):
        if process.poll() is not None:
            reader.join(timeout=5)
            pytest.fail(f"quarry serve exited with {process.returncode}:\n{''.join(output)}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"quarry serve not ready in {SERVER_START_TIMEOUT_S} s:\n{''.join(output)}")
        time.sleep(0.5)
    time.sleep(0.5)  # the table after the ready line


def stop_cleanly(
    process: subprocess.Popen[str],
    output: list[str],
    port: int,
    *,
    name: str,
    stop_signal: int = signal.SIGINT,
    timeout_s: float = 90,
) -> None:
    """Send `stop_signal`, then check the process exited 0 and nothing listens on its port."""
    process.send_signal(stop_signal)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(
            f"{name} did not stop within {timeout_s:.0f} s of {signal.Signals(stop_signal).name}"
        )
    assert code == 0, f"{name} exited with {code}:\n{''.join(output)}"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"{name} still listens on {port}"


def stop_with_ctrl_c(process: subprocess.Popen[str], output: list[str], port: int) -> None:
    """Ctrl-C, as a user stops `quarry serve`: vLLM and its workers must be gone."""
    stop_cleanly(process, output, port, name="quarry serve")


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    port = free_port()
    env = server_env(tmp_path_factory.mktemp("server-data"), port)
    process, output, reader = start_quarry_serve(env)
    wait_until_ready(process, output, reader)
    settings = load_settings(
        profile="cpu",
        data_dir=env["QUARRY_DATA_DIR"],
        server={
            "port": port,
            "max_model_len": TEST_MAX_MODEL_LEN,
            "kv_cache_space_gib": TEST_KV_CACHE_GIB,
        },
    )
    yield RunningServer(settings=settings, env=env, process=process, output=output)
    stop_with_ctrl_c(process, output, port)
