"""`quarry up`'s sample collection: one copy of the user documentation, whichever checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

from quarry.app.launch import refresh_sample_collection
from quarry.components import Components
from quarry.ingest.embedding import Embedder
from quarry.settings import load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_another_checkouts_copy_is_replaced_and_uploads_are_kept(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = load_settings(
        profile="cpu", data_dir=tmp_path / "data", ingest={"collection": "quarry-docs"}
    )
    parts = Components(settings, embedders=[embedder])
    old, new = tmp_path / "old-clone" / "docs", tmp_path / "new-clone" / "docs"
    for copy in (old, new):
        copy.mkdir(parents=True)
        for name in ("chat.md", "configuration.md"):
            shutil.copy(DOCS / name, copy / name)
    uploads = settings.data_dir / "uploads" / "quarry-docs"
    uploads.mkdir(parents=True)
    (uploads / "mine.md").write_text("# Mine\n\nThe user's own uploaded notes.\n")

    refresh_sample_collection(parts, old)
    parts.ingest([uploads])
    report, stale = refresh_sample_collection(parts, new)

    assert stale == 2 and report.counts()["added"] == 2
    roots = sorted({record.root for record in parts.collection().documents().values()})
    assert roots == sorted([str(new), str(uploads)])
    hits = parts.retriever().search("How do I change the port of the model server?", 4)
    assert hits and len({p.text for p in hits}) == len(hits)  # no passage comes twice
    _, again = refresh_sample_collection(parts, new)
    assert again == 0
