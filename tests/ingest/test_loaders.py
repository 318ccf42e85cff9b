"""Each format becomes text with its structure; each bad input gets a reason."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from quarry.ingest.loaders import decode_text, load
from quarry.ingest.records import LoadError
from tests.ingest.conftest import (
    HTML,
    MARKDOWN,
    RST,
    make_docx,
    make_encrypted_pdf,
    make_pdf,
)


def _load(path: Path):
    return load(path, path.read_bytes())


def test_markdown_rst_text_titles(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(MARKDOWN)
    (tmp_path / "b.rst").write_text(RST)
    (tmp_path / "pep-1.rst").write_text("PEP: 1\nTitle: PEP Purpose\nAuthor: x\n\nBody\n")
    (tmp_path / "c.txt").write_text("just text\n")
    assert _load(tmp_path / "a.md").title == "Kitchen Handbook"
    assert _load(tmp_path / "a.md").markup == "markdown"
    assert _load(tmp_path / "b.rst").title == "Sailing Primer"
    assert _load(tmp_path / "pep-1.rst").title == "PEP Purpose"
    assert _load(tmp_path / "c.txt").title == "c"


def test_html_keeps_headings_drops_scripts(tmp_path: Path) -> None:
    (tmp_path / "b.html").write_text(HTML)
    doc = _load(tmp_path / "b.html")
    text = doc.blocks[0].text
    assert doc.title == "Bee Keeping"
    assert "## Hives" in text and "never indexed" not in text and "color" not in text


def test_docx_headings_and_tables(tmp_path: Path) -> None:
    doc = _load(make_docx(tmp_path / "g.docx"))
    text = doc.blocks[0].text
    assert doc.title == "Quarterly Garden Report"
    assert "# Tomatoes" in text and "### Irrigation" not in text and "## Irrigation" in text
    assert "| Crop | Yield |\n| --- | --- |\n| Tomato | 42 kg |" in text


def test_pdf_pages_are_numbered_from_one(tmp_path: Path) -> None:
    doc = _load(make_pdf(tmp_path / "a.pdf", ["First page text", "", "Third page text"]))
    assert [(b.page, b.text.strip()) for b in doc.blocks] == [
        (1, "First page text"),
        (3, "Third page text"),
    ]


@pytest.mark.parametrize(
    ("name", "build", "reason"),
    [
        ("enc.pdf", make_encrypted_pdf, "encrypted PDF"),
        ("bad.pdf", lambda p: p.write_bytes(b"%PDF-1.4\n garbage \x00\x01") or p, "corrupt"),
        ("scan.pdf", lambda p: make_pdf(p, ["", ""]), "no extractable text"),
        ("bad.docx", lambda p: p.write_bytes(b"PK\x03\x04 not a zip") or p, "not a readable DOCX"),
        ("bin.md", lambda p: p.write_bytes(bytes(range(256)) * 4) or p, "binary"),
    ],
)
def test_unreadable_files_fail_with_a_reason(
    tmp_path: Path, name: str, build: object, reason: str
) -> None:
    path = tmp_path / name
    build(path)  # type: ignore[operator]
    with pytest.raises(LoadError) as err:
        _load(path)
    assert reason in err.value.reason
    assert not err.value.skip


def test_empty_file_is_a_skip(tmp_path: Path) -> None:
    (tmp_path / "e.md").write_text("  \n\n")
    with pytest.raises(LoadError) as err:
        _load(tmp_path / "e.md")
    assert err.value.skip and err.value.reason == "empty file"


def test_decoding() -> None:
    assert decode_text("héllo".encode()) == ("héllo", None)
    assert decode_text(codecs.BOM_UTF16_LE + "héllo".encode("utf-16-le"))[0] == "héllo"
    text, note = decode_text("Café déjà vu, naïve résumé à la française.\n".encode("cp1252") * 3)
    assert text.startswith("Café déjà vu") and note == "not UTF-8; decoded as cp1252"
    with pytest.raises(LoadError, match="binary"):
        decode_text(b"abc\x00def")
