"""Starting the chat page, alone (`quarry chat`) or with everything it needs (`quarry up`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from quarry.settings import QuarrySettings

UI_SCRIPT = Path(__file__).resolve().parent / "ui.py"
SAMPLE_COLLECTION = "quarry-docs"


def streamlit_command(settings: QuarrySettings) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(UI_SCRIPT),
        "--server.address", settings.chat.ui_host,
        "--server.port", str(settings.chat.ui_port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        # Watching files would walk transformers' lazy modules (and their torchvision
        # imports) from any working folder: nothing to reload in an installed app.
        "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip


def ui_url(settings: QuarrySettings) -> str:
    host = "127.0.0.1" if settings.chat.ui_host in ("0.0.0.0", "::") else settings.chat.ui_host
    return f"http://{host}:{settings.chat.ui_port}"


def start_ui(
    settings: QuarrySettings, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The Streamlit page in a subprocess; it reads the same settings from QUARRY_* variables."""
    return subprocess.Popen(streamlit_command(settings), env={**os.environ, **(env or {})})
