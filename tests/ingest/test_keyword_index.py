"""The BM25 index stays in step with the collection: add, update, prune, forget, crashes and
other writers, against real Chroma in both modes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from quarry.cli import app
from quarry.components import Components
from quarry.ingest.collection import Collection, keyword_folder
from quarry.ingest.embedding import Embedder
from quarry.ingest.keyword_index import KeywordIndex
from quarry.ingest.report import IngestReport
from quarry.settings import QuarrySettings
from tests.ingest.conftest import write_corpus

Run = Callable[..., IngestReport]


def _index(settings: QuarrySettings) -> KeywordIndex:
    index = KeywordIndex(keyword_folder(settings), settings.ingest.collection)
    assert index.load(), "no keyword index on disk"
    return index


def _sources(store: Collection, index: KeywordIndex, query: str) -> set[str]:
    ids = [hit.chunk_id for hit in index.search(query, 10)]
    if not ids:
        return set()
    return {m["source"] for m in store.chunks_collection().get(ids=ids)["metadatas"]}


def _in_step(store: Collection, index: KeywordIndex) -> None:
    """Same generation as the collection, and exactly its chunks."""
    assert index.generation == store.generation()
    assert len(index) == store.chunks_collection().count()


def test_ingest_builds_the_index_and_updates_rebuild_it(
    tmp_path: Path, run: Run, store: Collection, settings: QuarrySettings
) -> None:
    docs = write_corpus(tmp_path / "docs")
    report = run(docs)
    assert report.keyword_chunks == store.chunks_collection().count()
    index = _index(settings)
    _in_step(store, index)
    assert _sources(store, index, "bowline") == {"sailing.rst"}
    assert _sources(store, index, "irrigation") == {"garden.docx"}  # title and heading words

    (docs / "notes.txt").write_text("Plain notes: the marina rents kayaks on Saturdays.\n")
    (docs / "extra.md").write_text("# Extra\n\nZeppelins float on hydrogen or helium.\n")
    report = run(docs)
    assert report.counts()["updated"] == 1 and report.counts()["added"] == 1
    index = _index(settings)
    _in_step(store, index)
    assert _sources(store, index, "library Sundays") == set()
    assert _sources(store, index, "kayaks") == {"notes.txt"}
    assert _sources(store, index, "zeppelin") == {"extra.md"}  # stemmed: zeppelins

    generation = index.generation
    report = run(docs)  # nothing changed: the index is not rebuilt
    assert report.keyword_chunks is None and _index(settings).generation == generation

    (docs / "extra.md").unlink()
    run(docs, prune=True)
    index = _index(settings)
    _in_step(store, index)
    assert _sources(store, index, "zeppelin") == set()


def test_forget_keeps_the_index_in_step(
    tmp_path: Path,
    run: Run,
    store: Collection,
    settings: QuarrySettings,
) -> None:
    docs = write_corpus(tmp_path / "docs")
    run(docs)
    env = {"QUARRY_DATA_DIR": str(settings.data_dir)}
    if settings.chroma.host:
        env |= {"QUARRY_CHROMA_HOST": settings.chroma.host}
        env |= {"QUARRY_CHROMA_PORT": str(settings.chroma.port)}
    runner = CliRunner()
    name = settings.ingest.collection
    result = runner.invoke(app, ["forget", str(docs / "sailing.rst"), "-c", name, "-y"], env=env)
    assert result.exit_code == 0, result.output
    index = _index(settings)
    _in_step(store, index)
    assert _sources(store, index, "bowline") == set()
    assert _sources(store, index, "bees") == {"bees.html"}

    result = runner.invoke(app, ["forget", "-c", name, "-y"], env=env)
    assert result.exit_code == 0, result.output
    assert not index.path.exists()


def test_a_reader_follows_writes_and_repairs_a_stale_index(
    tmp_path: Path, run: Run, store: Collection, settings: QuarrySettings, embedder: Embedder
) -> None:
    docs = write_corpus(tmp_path / "docs")
    run(docs)
    keyword_only = settings.model_copy(
        update={"retrieval": settings.retrieval.model_copy(update={"hybrid_weight": 1.0})}
    )
    retriever = Components(keyword_only, embedders=[embedder]).retriever(settings.ingest.collection)
    assert retriever.search("bowline loop", 1)[0].source == "sailing.rst"

    # Another writer (a teammate on the same Chroma server): the open retriever picks it up.
    (docs / "extra.md").write_text("# Extra\n\nZeppelins float on hydrogen or helium.\n")
    run(docs)
    assert retriever.search("zeppelins hydrogen", 1)[0].source == "extra.md"

    # A run that died between its writes and the rebuild leaves the old index on disk, stamped
    # with an older generation: the next reader rebuilds it once and saves it.
    store.mark_updated()
    assert _index(settings).generation != store.generation()
    fresh = Components(keyword_only, embedders=[embedder]).retriever(settings.ingest.collection)
    assert fresh.search("zeppelins hydrogen", 1)[0].source == "extra.md"
    _in_step(store, _index(settings))

    # A missing index (deleted, or a collection older than hybrid search) is rebuilt too.
    KeywordIndex(keyword_folder(settings), settings.ingest.collection).delete()
    again = Components(keyword_only, embedders=[embedder]).retriever(settings.ingest.collection)
    assert again.search("bowline loop", 1)[0].source == "sailing.rst"
    _in_step(store, _index(settings))
