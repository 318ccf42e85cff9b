"""What the store and input fault tests share: the `quarry` CLI as a process, a Chroma server
that can be killed and started again on the same port and data folder, small corpora, and the
check that a user saw one sentence and no traceback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from quarry.ingest.collection import Collection
from quarry.serve.process import ManagedProcess
from tests.ingest.conftest import CHROMA_START_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 180
COLLECTION = "faults"
# Words the notes are made of: each note is one chunk, different enough to rank apart.
WORDS = ["harbour", "timber", "salt", "cargo", "dawn", "crane", "dock", "tide", "rope", "anchor",
         "gull", "beacon"]  # fmt: skip


class Chroma:
    """A real `chroma run` on a fixed port and data folder, so that after a SIGKILL it can be
    started again where clients (and the settings) expect it."""

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
        self.url = f"http://127.0.0.1:{port}"
        self.process: ManagedProcess | None = None
        self.starts = 0

    def start(self) -> Chroma:
        chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
        self.starts += 1
        self.process = ManagedProcess(
            [chroma, "run", "--path", str(self.path), "--port", str(self.port)],
            self.path.parent / f"chroma-{self.starts}.log",
            name="Chroma server",
            health_url=f"{self.url}/api/v2/heartbeat",
        ).start()
        self.process.wait_healthy(CHROMA_START_TIMEOUT_S, interval_s=0.2)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no chance to flush or answer."""
        assert self.process is not None and self.process.process is not None
        os.kill(self.process.process.pid, signal.SIGKILL)
        self.process.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace_s=10)


def cli_env(data_dir: Path, chroma: Chroma | None = None, **extra: str) -> dict[str, str]:
    """The environment `quarry` runs in: this test's data folder, small chunks, the float32
    backend (what the in-process `embedder` fixture computes), nothing from the shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    env.update(
        QUARRY_DATA_DIR=str(data_dir),
        QUARRY_INGEST_COLLECTION=COLLECTION,
        QUARRY_INGEST_CHUNK_SIZE="64",
        QUARRY_INGEST_CHUNK_OVERLAP="8",
        QUARRY_EMBEDDING_BACKEND="torch",
        PYTHONPATH=str(ROOT),
        COLUMNS="200",
    )
    if chroma is not None:
        env.update(QUARRY_CHROMA_HOST="127.0.0.1", QUARRY_CHROMA_PORT=str(chroma.port))
    env.update(extra)
    return env


def quarry_argv(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "quarry.cli", *map(str, args)]


def quarry(
    *args: str | Path, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        quarry_argv(*args),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def one_sentence(stderr: str) -> str:
    """What the user was told: a single line, with no traceback (plain or Rich's boxed one)."""
    assert "Traceback" not in stderr and "╭" not in stderr, stderr[-4000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr[-4000:]
    return lines[0]


def write_notes(folder: Path, count: int, *, prefix: str = "note") -> Path:
    """`count` one-chunk Markdown notes, each naming its own number."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(8))
        (folder / f"{prefix}-{i:03d}.md").write_text(
            f"# {prefix.title()} {i}\n\nThe harbour log entry {prefix}{i} records {words}.\n"
        )
    return folder


def write_long_notes(folder: Path, count: int, *, start: int = 0) -> Path:
    """Notes of about 25 chunks each, to fill a disk with few files."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        paragraphs = [" ".join(_word(i, p, w) for w in range(120)) for p in range(5)]
        (folder / f"long-{i:03d}.md").write_text(f"# Long {i}\n\n" + "\n\n".join(paragraphs))
    return folder


def _word(note: int, paragraph: int, n: int) -> str:
    return f"{WORDS[(note * 7 + paragraph * 3 + n) % len(WORDS)]}{(note * 31 + n) % 997}"


def whole_documents(store: Collection) -> dict[str, int]:
    """Each committed document's chunk count, checking that every one of its chunks is stored
    (what a reader can rely on, even while an interrupted write is still pending)."""
    records = store.documents()
    committed = [r for r in records.values() if r.state == "ok"]
    present = set(store.chunks_collection().get(include=[])["ids"])
    for record in committed:
        missing = set(record.ids()) - present
        assert not missing, f"{record.source} lost {len(missing)} of {record.chunks} chunks"
    return {r.source: r.chunks for r in committed}


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 MB tmpfs (root only); unmounted afterwards whatever happened."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)  # open store handles


def resize(mount: Path, kib: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={kib}k", str(mount)], check=True)


def used_kib(mount: Path) -> int:
    stats = os.statvfs(mount)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize // 1024
