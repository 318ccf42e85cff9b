"""One loader per format, each turning a file into text blocks plus a title.

PDFs go through LangChain's `PyPDFLoader` (one document per page, page numbers kept). Text
formats are decoded here rather than with LangChain's `TextLoader`, because the report needs
to say *why* a file is not text (binary, unknown encoding) and which encoding was guessed.
HTML and DOCX are rewritten as Markdown headings so the splitter sees their structure.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from pathlib import Path

from ingest.records import LoadedDocument, LoadError, Markup, TextBlock

BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_ATX = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_PEP_TITLE = re.compile(r"\A(?:[A-Za-z-]+:.*\n(?:[ \t]+.*\n)*)*?Title:\s*(.+)", re.MULTILINE)


def decode_text(data: bytes) -> tuple[str, str | None]:
    """Bytes -> text, or `LoadError`. Returns the text and a note when the encoding was guessed."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), None
            except UnicodeDecodeError as exc:
                raise LoadError(f"invalid {encoding} text: {exc.reason}") from None
    if b"\x00" in data[:8192]:
        raise LoadError("binary content (NUL bytes), not text")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[:1_000_000]).best()
    if best is None or best.chaos > 0.2:
        raise LoadError("not UTF-8 and no other text encoding fits (binary?)")
    encoding = best.encoding
    if encoding.startswith(("cp125", "iso8859", "latin", "mac_")) and _decodes(data, "cp1252"):
        encoding = "cp1252"  # the usual legacy encoding; short samples often look Baltic etc.
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise LoadError(f"not UTF-8; looked like {encoding} but did not decode") from None
    return text, f"not UTF-8; decoded as {encoding}"


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _text_document(path: Path, data: bytes, markup: Markup) -> LoadedDocument:
    text, note = decode_text(data)
    if markup == "markdown":
        title = _first_match(_ATX, text)
    elif markup == "rst":
        title = _first_match(_PEP_TITLE, text) or _rst_title(text)
    else:
        title = None
    return LoadedDocument(
        title=title or path.stem,
        markup=markup,
        blocks=[TextBlock(text)],
        notes=[note] if note else [],
    )


def _first_match(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1).strip() if match else None


def _rst_title(text: str) -> str | None:
    from ingest.splitting import rst_headings

    headings = rst_headings(text)
    return headings[0][2] if headings else None


def load_markdown(path: Path, data: bytes) -> LoadedDocument:
    return _text_document(path, data, "markdown")


def load_rst(path: Path, data: bytes) -> LoadedDocument:
    return _text_document(path, data, "rst")


def load_plain(path: Path, data: bytes) -> LoadedDocument:
    return _text_document(path, data, "plain")


def load_html(path: Path, data: bytes) -> LoadedDocument:
    """Visible text with h1-h6 turned into Markdown headings; scripts and styles dropped."""
    from bs4 import BeautifulSoup

    text, note = decode_text(data)
    soup = BeautifulSoup(text, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "svg", "head"]):
        tag.decompose()
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n")
    for block in soup.find_all(["p", "li", "pre", "tr", "br", "div", "blockquote"]):
        block.insert_after("\n")
    body = re.sub(r"[ \t]+\n", "\n", soup.get_text())
    body = re.sub(r"\n{3,}", "\n\n", body).strip()
    if not body:
        raise LoadError("no visible text in the HTML", skip=True)
    return LoadedDocument(
        title=title or _first_match(_ATX, body) or path.stem,
        markup="markdown",
        blocks=[TextBlock(body)],
        notes=[note] if note else [],
    )


def load_docx(path: Path, data: bytes) -> LoadedDocument:
    """Paragraphs and tables in order; 'Heading N' and 'Title' styles become headings."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(f"not a readable DOCX file ({type(exc).__name__})") from None
    lines: list[str] = []
    title = (document.core_properties.title or "").strip()
    for item in document.iter_inner_content():
        if isinstance(item, docx.table.Table):
            for row in item.rows:
                lines.append(" | ".join(cell.text.strip() for cell in row.cells))
            lines.append("")
            continue
        text = item.text.strip()
        if not text:
            continue
        style = (item.style.name if item.style is not None else "") or ""
        level = _heading_level(style)
        if level:
            title = title or text
            lines.append(f"\n{'#' * level} {text}\n")
        else:
            lines.append(text + "\n")
    body = "\n".join(lines).strip()
    if not body:
        raise LoadError("no text in the DOCX", skip=True)
    return LoadedDocument(title=title or path.stem, markup="markdown", blocks=[TextBlock(body)])


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return min(int(match.group(1)), 6) if match else 0


def load_pdf(path: Path, data: bytes) -> LoadedDocument:
    """Text per page (1-based page numbers); encrypted, corrupt and image-only PDFs fail."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF (needs a password)")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except FileNotDecryptedError:
        raise LoadError("encrypted PDF (needs a password)") from None
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from None
    blocks = [TextBlock(text, page=number) for number, text in enumerate(pages, 1) if text.strip()]
    if not blocks:
        raise LoadError("no extractable text (a scanned, image-only PDF?)")
    return LoadedDocument(title=str(title).strip() or path.stem, markup="plain", blocks=blocks)


Loader = Callable[[Path, bytes], LoadedDocument]

LOADERS: dict[str, Loader] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_plain,
    ".text": load_plain,
    ".rst": load_rst,
    ".rest": load_rst,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}


def load(path: Path, data: bytes) -> LoadedDocument:
    """Dispatch on the extension; empty documents are a skip, not a failure."""
    if not data.strip():
        raise LoadError("empty file", skip=True)
    document = LOADERS[path.suffix.lower()](path, data)
    if not any(block.text.strip() for block in document.blocks):
        raise LoadError("no text", skip=True)
    return document
