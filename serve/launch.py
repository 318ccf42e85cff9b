"""From settings to a running, healthy vLLM server: used by `quarry serve` and the tests."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from quarry.serve.command import build_command
from quarry.serve.model_prep import prepare_cpu_model
from quarry.serve.process import VllmServer
from quarry.settings import CPU_MODEL, QuarrySettings, SettingsError


def default_model_dir(settings: QuarrySettings) -> Path:
    return settings.models_dir / CPU_MODEL


def prepared_chat_model(settings: QuarrySettings) -> str:
    """Make sure the model the server will load exists; prepare the offline one if needed."""
    model = settings.server.model
    if Path(model) == default_model_dir(settings):
        prepare_cpu_model(Path(model))
        return model
    if _looks_like_path(model) and not Path(model).expanduser().exists():
        raise SettingsError(
            f"server.model: {model} does not exist. Pass a folder that holds the model's "
            "config.json and weights, or a model hub id such as "
            "meta-llama/Meta-Llama-3-8B-Instruct (flag --model, QUARRY_SERVER_MODEL)."
        )
    return model


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or Path(model).is_absolute()


def ensure_port_free(host: str, port: int) -> None:
    """Fail before starting vLLM (and before touching its log) when the port is taken."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise SettingsError(
                f"server.port: {host}:{port} is already in use ({exc.strerror}). Stop what "
                "listens there, or pass --port (QUARRY_SERVER_PORT)."
            ) from None


def log_path_for(settings: QuarrySettings) -> Path:
    return settings.data_dir / "logs" / f"vllm-{settings.server.port}.log"


def start_server(
    settings: QuarrySettings,
    log_path: Path | None = None,
    on_tick: Callable[[], None] | None = None,
) -> VllmServer:
    """Prepare the model, start vLLM and return once `/health` answers (or raise)."""
    prepared_chat_model(settings)
    ensure_port_free(settings.server.host, settings.server.port)
    server = VllmServer(
        build_command(settings), settings.server.base_url, log_path or log_path_for(settings)
    )
    server.start()
    try:
        server.wait_healthy(settings.server.startup_timeout_s, on_tick=on_tick)
    except BaseException:
        server.stop()
        raise
    return server
