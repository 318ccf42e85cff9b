"""The server process manager: failures surface with the log and a hint, never a hang."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from quarry.serve.command import VllmCommand
from quarry.serve.process import ServerStartError, VllmServer, hint_for


def _server(tmp_path: Path, code: str) -> VllmServer:
    command = VllmCommand(argv=[sys.executable, "-c", code])
    return VllmServer(command, "http://127.0.0.1:9", tmp_path / "logs" / "server.log")


@pytest.mark.heavy  # each starts a process
def test_a_process_that_dies_reports_its_log_and_a_hint(tmp_path: Path) -> None:
    server = _server(
        tmp_path,
        "import sys; print('loading'); print('OSError: [Errno 98] Address already in use');"
        "sys.exit(3)",
    )
    server.start()
    with pytest.raises(ServerStartError) as err:
        server.wait_healthy(timeout_s=30)
    message = str(err.value)
    assert "vLLM exited with code 3" in message
    assert "Address already in use" in message  # the log's last lines
    assert "Hint: The port is taken" in message


@pytest.mark.heavy
def test_a_process_that_never_gets_healthy_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    server = _server(tmp_path, "import time; print('warming up', flush=True); time.sleep(600)")
    server.start()
    started = time.monotonic()
    with pytest.raises(ServerStartError, match=r"not healthy after 2 s[\s\S]*warming up"):
        server.wait_healthy(timeout_s=2)
    assert time.monotonic() - started < 60
    assert server.process is not None and server.process.poll() is not None


@pytest.mark.heavy
def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    server = _server(
        tmp_path,
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
    )
    server.start()
    time.sleep(0.5)
    server.stop(grace_s=1)
    assert server.process is not None and server.process.returncode is not None


@pytest.mark.parametrize(
    ("log", "hint"),
    [
        ("torch.OutOfMemoryError: CUDA out of memory", "lower --max-model-len"),
        ("Cannot access gated repo for url", "huggingface-cli login"),
        ("RuntimeError: operator torchvision::nms does not exist", "pip uninstall -y torchvision"),
        ("something new", "quarry doctor"),
    ],
)
def test_hints_for_known_failures(log: str, hint: str) -> None:
    assert hint in hint_for(log)
