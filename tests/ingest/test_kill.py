"""A real SIGKILL in the middle of writing a document, then a normal run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from quarry.ingest.collection import Collection
from quarry.settings import QuarrySettings
from tests.ingest.conftest import assert_consistent, write_corpus

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from quarry.ingest.collection import Collection
    from quarry.ingest.pipeline import ingest
    from quarry.settings import load_settings

    real = Collection._finish

    def finish_then_die(self, *pending):
        # New chunks are stored, old ones not yet deleted, records not committed: die here.
        if any(p.source == sys.argv[2] for p in pending):
            os.kill(os.getpid(), signal.SIGKILL)
        real(self, *pending)

    Collection._finish = finish_then_die
    ingest([Path(sys.argv[1])], load_settings())
    """
)


def test_sigkill_mid_document_then_rerun(
    tmp_path: Path, settings: QuarrySettings, run, store: Collection
) -> None:
    docs = write_corpus(tmp_path / "docs")
    run(docs)
    (docs / "sailing.rst").write_text("Sailing v2\n==========\n\nReef early, reef often.\n")
    env = {
        **os.environ,
        "QUARRY_DATA_DIR": str(settings.data_dir),
        "QUARRY_INGEST_COLLECTION": settings.ingest.collection,
        "QUARRY_INGEST_CHUNK_SIZE": "64",
        "QUARRY_INGEST_CHUNK_OVERLAP": "8",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    if settings.chroma.host:
        env["QUARRY_CHROMA_HOST"] = settings.chroma.host
        env["QUARRY_CHROMA_PORT"] = str(settings.chroma.port)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(docs), "sailing.rst"],
        env=env,
        timeout=300,
        capture_output=True,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    pending = [r for r in store.documents().values() if r.state == "writing"]
    assert [r.source for r in pending] == ["sailing.rst"]
    report = run(docs)
    assert report.recovered == [("sailing.rst", "interrupted write completed")]
    assert_consistent(store)
    texts = store.chunks_collection().get(where={"source": "sailing.rst"}, include=["documents"])
    assert "Reef early" in " ".join(texts["documents"])
    assert report.counts()["unchanged"] == 6
