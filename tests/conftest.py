"""Shared fixtures: a real vLLM server on the CPU profile, started once per test session.

The server is started through `quarry serve` itself, in a subprocess, the way a user starts
it; the fixture waits for its "ready" line, and stops it with Ctrl-C (SIGINT) at the end,
checking that it shut down cleanly.

Two tiers: a test that loads a model, starts a process or opens a Chroma store is marked
`heavy` (by the fixtures it uses, below, or by hand); `make test-fast` runs the others
(`pytest -m "not heavy"`), `make test` runs everything. No test reads or writes the user's
own cache or data folders: they point at temporary ones for the whole run.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from quarry.app.retrieval import Retriever
from quarry.components import Components
from quarry.eval.server_metrics import free_port
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.serve.process import ManagedProcess
from quarry.settings import QuarrySettings, load_settings

SERVER_START_TIMEOUT_S = 600
# Small enough to start fast on two cores, large enough for a long shared prefix.
TEST_MAX_MODEL_LEN = 2048
TEST_KV_CACHE_GIB = 1


# A test that uses one of these fixtures, directly or through another, is marked `heavy`. A new
# fixture that loads a model, starts a process or opens a Chroma store belongs here; a test
# that does so itself gets `@pytest.mark.heavy`.
HEAVY_FIXTURES = {
    "embedder",  # loads the MiniLM embedding model
    "vllm_server",  # starts `quarry serve` (vLLM on the CPU)
    "classifier_server",  # starts vLLM with a BERT classifier
    "chroma_server",  # starts `chroma run`
    "settings_factory",  # a Chroma store (embedded or server) for the ingestion tests
    "chat_url",  # starts Streamlit, for Chromium
    "prepared_model",  # converts the offline chat model with transformers
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("server") or uses & HEAVY_FIXTURES:
            item.add_marker(pytest.mark.heavy)


def _clear_quarry_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("QUARRY_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def _private_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The run's own cache, data and config folders (XDG_*), never the user's ~/.cache/quarry
    or ~/.local/share/quarry: Quarry's defaults, vLLM's and the model hub's caches follow.

    The cache is shared by the whole run, so the offline chat model is prepared in it once
    (by the doctor tests or the server fixture, whichever comes first). Set up before every
    other session fixture, so the servers they start inherit it too.
    """
    root = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _clear_quarry_variables(monkeypatch)
        for variable, folder in [
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_CONFIG_HOME", "config"),
        ]:
            monkeypatch.setenv(variable, str(root / folder))
        yield root


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No QUARRY_* variables or quarry.toml from the developer's shell leak into a test, and
    each test has its own default data folder."""
    _clear_quarry_variables(monkeypatch)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
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
    return Components(sample_settings, embedders=[embedder]).retriever(SAMPLE)


@dataclass
class RunningServer:
    settings: QuarrySettings
    env: dict[str, str]
    process: ManagedProcess  # `quarry serve`

    @property
    def base_url(self) -> str:
        return self.settings.server.base_url

    @property
    def model(self) -> str:
        return str(self.settings.server.served_model_name)

    @property
    def printed(self) -> str:
        return self.process.log_text()


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


_SERVE_RUNS = itertools.count()


def start_quarry_serve(env: dict[str, str], *args: str) -> ManagedProcess:
    """Run `quarry serve`; what it prints goes to a log file in its data folder."""
    log = Path(env["QUARRY_DATA_DIR"]) / f"quarry-serve-{next(_SERVE_RUNS)}.log"
    return ManagedProcess(
        [sys.executable, "-m", "quarry.cli", "serve", *args],
        log,
        env=env,
        name="quarry serve",
        default_sigint=True,  # the Ctrl-C tests stop it as a user's terminal would
    ).start()


def wait_until_ready(serve: ManagedProcess) -> None:
    """Until `quarry serve` prints its ready line; a clear failure if it exits or hangs."""
    serve.wait_until(lambda: "vLLM is ready" in serve.log_text(), SERVER_START_TIMEOUT_S)
    time.sleep(0.5)  # the table after the ready line


def stop_cleanly(
    process: ManagedProcess,
    port: int,
    *,
    stop_signal: int = signal.SIGINT,
    timeout_s: float = 90,
) -> None:
    """Send `stop_signal`, then check the process exited 0 and nothing listens on its port."""
    code = process.stop(timeout_s, stop_signal)
    if code == -signal.SIGKILL:
        pytest.fail(
            f"{process.name} did not stop within {timeout_s:.0f} s of "
            f"{signal.Signals(stop_signal).name}"
        )
    assert code == 0, f"{process.name} exited with {code}:\n{process.log_text()}"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"{process.name} still listens on {port}"


def stop_with_ctrl_c(serve: ManagedProcess, port: int) -> None:
    """Ctrl-C, as a user stops `quarry serve`: vLLM and its workers must be gone."""
    stop_cleanly(serve, port)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    port = free_port()
    env = server_env(tmp_path_factory.mktemp("server-data"), port)
    serve = start_quarry_serve(env)
    wait_until_ready(serve)
    settings = load_settings(
        profile="cpu",
        data_dir=env["QUARRY_DATA_DIR"],
        server={
            "port": port,
            "max_model_len": TEST_MAX_MODEL_LEN,
            "kv_cache_space_gib": TEST_KV_CACHE_GIB,
        },
    )
    yield RunningServer(settings=settings, env=env, process=serve)
    stop_with_ctrl_c(serve, port)
