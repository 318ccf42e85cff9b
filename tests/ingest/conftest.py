"""Fixtures for the ingestion tests: real files, real embeddings, real Chroma (embedded and a
`chroma run` server started once per session)."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from quarry.eval.server_metrics import free_port
from quarry.ingest.collection import Collection
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.ingest.report import IngestReport
from quarry.serve.process import ManagedProcess
from quarry.settings import QuarrySettings, load_settings

CHROMA_START_TIMEOUT_S = 60


class ChromaServer(ManagedProcess):
    """A real `chroma run` on a free port, its log beside its data folder."""

    def __init__(self, path: Path) -> None:
        self.port = free_port()
        chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
        super().__init__(
            [chroma, "run", "--path", str(path), "--port", str(self.port)],
            path.parent / "chroma.log",
            name="Chroma server",
            health_url=f"http://127.0.0.1:{self.port}/api/v2/heartbeat",
        )


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server") / "data").start()
    server.wait_healthy(CHROMA_START_TIMEOUT_S, interval_s=0.2)
    yield server
    server.stop(grace_s=10)


@pytest.fixture(params=["embedded", "server"])
def chroma_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings_factory(
    request: pytest.FixtureRequest, tmp_path: Path, chroma_mode: str
) -> Callable[..., QuarrySettings]:
    """Settings for this test's Chroma mode; a unique collection so server tests never meet."""
    collection = f"t-{uuid.uuid4().hex[:10]}"
    chroma: dict[str, Any] = {}
    if chroma_mode == "server":
        server: ChromaServer = request.getfixturevalue("chroma_server")
        chroma = {"host": "127.0.0.1", "port": server.port}

    def make(**ingest_overrides: Any) -> QuarrySettings:
        return load_settings(
            data_dir=tmp_path / "data",
            chroma=chroma,
            ingest={
                "collection": collection,
                "chunk_size": 64,
                "chunk_overlap": 8,
                **ingest_overrides,
            },
        )

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., QuarrySettings]) -> QuarrySettings:
    return settings_factory()


@pytest.fixture
def run(settings: QuarrySettings, embedder: Embedder) -> Callable[..., IngestReport]:
    def go(*paths: Path, **kwargs: Any) -> IngestReport:
        return ingest(list(paths), kwargs.pop("settings", settings), embedder=embedder, **kwargs)

    return go


@pytest.fixture
def store(settings: QuarrySettings) -> Collection:
    return Collection.open(settings, settings.ingest.collection)


def assert_consistent(store: Collection) -> None:
    """Every document is whole: its manifest names exactly the chunks stored for it."""
    records = store.documents()
    assert all(r.state == "ok" for r in records.values())
    expected = {cid for r in records.values() for cid in r.ids()}
    stored = set(store.chunks_collection().get(include=[])["ids"]) if store.exists() else set()
    assert stored == expected


# -- document builders ------------------------------------------------------------------


def make_pdf(path: Path, pages: list[str]) -> Path:
    """A small valid PDF with one text page per entry (empty text: an image-only page)."""
    streams = []
    for text in pages:
        escaped = [
            line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            for line in text.splitlines()
        ]
        ops = " ".join(f"({line}) Tj T*" for line in escaped)
        streams.append(f"BT /F1 11 Tf 72 740 Td 14 TL {ops} ET" if escaped else "")
    return write_pdf(path, streams)


def write_pdf(path: Path, streams: list[str]) -> Path:
    """A PDF with one page per content stream (PDF drawing operators), in Helvetica."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(streams)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(streams)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, stream in enumerate(streams):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream".encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    path.write_bytes(bytes(out))
    return path


def make_encrypted_pdf(path: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    plain = make_pdf(path.with_suffix(".plain"), ["Secret page"])
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="AES-128")
    with open(path, "wb") as handle:
        writer.write(handle)
    plain.unlink()
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly Garden Report", 0)
    document.add_heading("Tomatoes", level=1)
    document.add_paragraph("The tomato plants produced fruit early thanks to the warm spring.")
    document.add_heading("Irrigation", level=2)
    document.add_paragraph("Drip irrigation halved the water used by the tomato beds.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Crop", "Yield"
    table.cell(1, 0).text, table.cell(1, 1).text = "Tomato", "42 kg"
    document.save(str(path))
    return path


MARKDOWN = """# Kitchen Handbook

Intro line about the kitchen.

## Knives

Keep knives sharp; a dull blade slips and cuts fingers.

```python
# not a heading, a comment in code
print("hi")
```

## Ovens

Preheat the oven for twenty minutes before baking bread.
"""

RST = """\
===============
Sailing Primer
===============

Wind
====

Sailors read the wind from ripples on the water.

Knots
-----

The bowline makes a fixed loop that will not slip.
"""

HTML = """<html><head><title>Bee Keeping</title><style>p {color: red}</style></head>
<body><h1>Bee Keeping</h1><p>Bees need a calm keeper.</p>
<h2>Hives</h2><p>A hive holds about fifty thousand bees in summer.</p>
<script>var hidden = "never indexed";</script></body></html>
"""


def write_corpus(folder: Path) -> Path:
    """One small, valid file per supported format."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kitchen.md").write_text(MARKDOWN)
    (folder / "notes.txt").write_text("Plain notes: the library opens at nine on Sundays.\n")
    (folder / "sailing.rst").write_text(RST)
    (folder / "bees.html").write_text(HTML)
    make_docx(folder / "garden.docx")
    make_pdf(folder / "astronomy.pdf", ["Saturn has rings of ice.", "Mars has two moons."])
    return folder
