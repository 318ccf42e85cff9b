"""Starting the chat page, alone (`quarry chat`) or with everything it needs (`quarry up`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from quarry.components import Components
from quarry.ingest.report import IngestReport
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


def api_url(settings: QuarrySettings) -> str:
    host = "127.0.0.1" if settings.api.host in ("0.0.0.0", "::") else settings.api.host
    return f"http://{host}:{settings.api.port}/v1"


def child_env(settings: QuarrySettings, collection: str) -> dict[str, str]:
    """What a page or `quarry api` started from this process needs to see its settings,
    flags included, with `collection` searched first."""
    env = {
        "QUARRY_PROFILE": str(settings.profile),
        "QUARRY_DATA_DIR": str(settings.data_dir),
        "QUARRY_CACHE_DIR": str(settings.cache_dir),
        "QUARRY_SERVER_HOST": settings.server.host,
        "QUARRY_SERVER_PORT": str(settings.server.port),
        "QUARRY_CHAT_UI_PORT": str(settings.chat.ui_port),
        "QUARRY_INGEST_COLLECTION": collection,
        "QUARRY_API_HOST": settings.api.host,
        "QUARRY_API_PORT": str(settings.api.port),
    }
    if settings.server.api_key:
        env["QUARRY_SERVER_API_KEY"] = settings.server.api_key
    return env


def start_api(
    settings: QuarrySettings, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`quarry api` in a subprocess, beside the page (`api.start_with_up`)."""
    command = [sys.executable, "-m", "quarry.cli", "api", "--profile", str(settings.profile)]
    return subprocess.Popen(command, env={**os.environ, **(env or {})})


def start_ui(
    settings: QuarrySettings, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The Streamlit page in a subprocess; it reads the same settings from QUARRY_* variables."""
    return subprocess.Popen(streamlit_command(settings), env={**os.environ, **(env or {})})


def refresh_sample_collection(parts: Components, docs: Path) -> tuple[IngestReport, int]:
    """Bring the sample collection in line with `docs`, this installation's copy of the
    user documentation; returns the report and how many stale documents were dropped.

    Another checkout or install of Quarry leaves its own copy's documents in the shared data
    folder, and every passage would then come twice: documents from anywhere but `docs` or
    the page's uploads (under the data folder) are removed first.
    """
    from quarry.ingest.collection import writer_lock

    settings = parts.settings
    collection = parts.collection()
    keep = (docs.resolve(), settings.data_dir.resolve())

    def elsewhere(root: str) -> bool:
        where = Path(root).resolve()
        return not any(where == kept or kept in where.parents for kept in keep)

    stale = [r for r in collection.documents().values() if elsewhere(r.root)]
    if stale:
        with writer_lock(settings):
            for record in stale:
                collection.remove(record)
            collection.mark_updated()
    return parts.ingest([docs]), len(stale)
