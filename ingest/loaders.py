"""One loader per format, each turning a file into text blocks plus a title.

PDFs are read with pypdf, one block per page so page numbers are kept; pages that draw lines
are also given to pdfplumber, which finds ruled tables. Text formats are decoded here rather
than with LangChain's `TextLoader`, because the report needs to say *why* a file is not text
(binary, unknown encoding) and which encoding was guessed. HTML and DOCX are rewritten as
Markdown (headings, pipe tables, fenced code) and PDF tables as pipe tables, so the splitter
sees their structure and keeps each table and code block whole.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from quarry.ingest.records import LoadedDocument, LoadError, Markup, TextBlock

BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_ATX = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_PEP_TITLE = re.compile(r"\A(?:[A-Za-z-]+:.*\n(?:[ \t]+.*\n)*)*?Title:\s*(.+)", re.MULTILINE)
# PDF path operators that draw a table's rules: `x y w h re` and `x y l`.
_PDF_RULES = re.compile(rb"(?:-?[\d.]+\s+){4}re\b|(?:-?[\d.]+\s+){2}l\b")
_PDF_MIN_RULES = 4
# The file `load` is reading, so a library's warning in the log can name it.
reading: ContextVar[Path | None] = ContextVar("reading", default=None)


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
    from quarry.ingest.splitting import rst_headings

    headings = rst_headings(text)
    return headings[0][2] if headings else None


def load_markdown(path: Path, data: bytes) -> LoadedDocument:
    return _text_document(path, data, "markdown")


def load_rst(path: Path, data: bytes) -> LoadedDocument:
    return _text_document(path, data, "rst")


def load_plain(path: Path, data: bytes) -> LoadedDocument:
    return _text_document(path, data, "plain")


def pipe_table(rows: list[list[str]]) -> str:
    """Rows of cell texts as a Markdown pipe table, the first row as its header: the form
    the splitter recognises as a table, whatever the source format."""
    width = max(len(row) for row in rows)

    def line(cells: list[str]) -> str:
        cells = [re.sub(r"\s+", " ", cell).strip().replace("|", "\\|") for cell in cells]
        return "| " + " | ".join(cells + [""] * (width - len(cells))) + " |"

    return "\n".join([line(rows[0]), "|" + " --- |" * width, *(line(row) for row in rows[1:])])


def _fenced(code: str, language: str = "") -> str:
    """A Markdown fenced code block, its fence longer than any backtick run in the code."""
    fence = "```"
    while fence in code:
        fence += "`"
    return f"\n\n{fence}{language}\n{code.strip(chr(10))}\n{fence}\n\n"


def _html_language(tag: Any) -> str:
    """`python` from class="language-python" (or lang-python) on a <pre> or its <code>."""
    for element in (tag, tag.find("code")):
        classes = element.get("class") if element is not None else None
        for name in classes or []:
            if name.startswith(("language-", "lang-")):
                return name.split("-", 1)[1]
    return ""


def _html_tables(soup: Any) -> None:
    """Outermost data tables become pipe tables; a one-column or nested table is layout and
    left as text."""
    for table in [t for t in soup.find_all("table") if t.find_parent("table") is None]:
        if table.find("table") is not None:
            continue
        rows = []
        for tr in table.find_all("tr"):
            cells = []
            for cell in tr.find_all(["th", "td"], recursive=False):
                cells += [cell.get_text(" ", strip=True)] + [""] * (_colspan(cell) - 1)
            if any(cells):
                rows.append(cells)
        if not rows or max(len(row) for row in rows) < 2:
            continue
        caption = table.find("caption")
        above = caption.get_text(" ", strip=True) + "\n\n" if caption else ""
        table.replace_with(f"\n\n{above}{pipe_table(rows)}\n\n")


def _colspan(cell: Any) -> int:
    try:
        return min(max(int(cell.get("colspan", 1)), 1), 100)
    except ValueError:
        return 1


def load_html(path: Path, data: bytes) -> LoadedDocument:
    """Visible text as Markdown: h1-h6 as headings, tables as pipe tables, <pre> (and
    multi-line <code>) as fenced code; scripts and styles dropped."""
    from bs4 import BeautifulSoup

    text, note = decode_text(data)
    soup = BeautifulSoup(text, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "svg", "head"]):
        tag.decompose()
    for pre in soup.find_all("pre"):
        pre.replace_with(_fenced(pre.get_text(), _html_language(pre)))
    for code in soup.find_all("code"):
        if "\n" in code.get_text().strip():
            code.replace_with(_fenced(code.get_text(), _html_language(code)))
    _html_tables(soup)
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
            rows = [_docx_row(row) for row in item.rows]
            if any(any(row) for row in rows):
                lines.append(pipe_table(rows) + "\n")
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


def _docx_row(row: Any) -> list[str]:
    """Cell texts; a cell merged across columns is repeated by python-docx: text once."""
    cells: list[str] = []
    previous = None
    for cell in row.cells:
        cells.append("" if cell is previous else cell.text)
        previous = cell
    return cells


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
        ruled = [number for number, page in enumerate(reader.pages) if _draws_rules(page)]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except FileNotDecryptedError:
        raise LoadError("encrypted PDF (needs a password)") from None
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from None
    notes = _pdf_tables(path, pages, ruled) if ruled else []
    blocks = [TextBlock(text, page=number) for number, text in enumerate(pages, 1) if text.strip()]
    if not blocks:
        raise LoadError("no extractable text (a scanned, image-only PDF?)")
    return LoadedDocument(
        title=str(title).strip() or path.stem, markup="plain", blocks=blocks, notes=notes
    )


def _draws_rules(page: Any) -> bool:
    """Whether a page's content draws a few lines or rectangles, as a ruled table does:
    only those pages pay for pdfplumber's layout analysis (about 30 times pypdf's time)."""
    try:
        contents = page.get_contents()
        data = contents.get_data() if contents is not None else b""
    except Exception:  # a damaged stream: pypdf's text is all this page gets
        return False
    return len(_PDF_RULES.findall(data, 0, 2_000_000)) >= _PDF_MIN_RULES


def _pdf_tables(path: Path, pages: list[str], ruled: list[int]) -> list[str]:
    """Replaces the text of `ruled` pages (0-based) holding tables by pdfplumber's: the text
    between tables, and each table as a pipe table in its place. Returns report notes."""
    import pdfplumber

    try:
        with pdfplumber.open(path) as pdf:
            for number in ruled:
                text = _pdf_page_with_tables(pdf.pages[number])
                if text is not None:
                    pages[number] = text
    except Exception as exc:  # pdfminer raises many types; pypdf's text stands
        return [f"tables not detected ({type(exc).__name__}: {exc})"]
    return []


def _pdf_page_with_tables(page: Any) -> str | None:
    """The page's text top to bottom with its tables as pipe tables; None without tables."""
    tables = [t for t in page.find_tables() if len(t.rows) >= 2]
    if not tables:
        return None
    left, top, right, bottom = page.bbox
    parts: list[str] = []
    for table in sorted(tables, key=lambda t: t.bbox[1]):
        if table.bbox[1] > top:
            parts.append(page.within_bbox((left, top, right, table.bbox[1])).extract_text())
        rows = [[cell or "" for cell in row] for row in table.extract()]
        parts.append(pipe_table(rows))
        top = max(top, table.bbox[3])
    if bottom > top:
        parts.append(page.within_bbox((left, top, right, bottom)).extract_text())
    return "\n\n".join(part.strip() for part in parts if part.strip())


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
    token = reading.set(path)
    try:
        document = LOADERS[path.suffix.lower()](path, data)
    finally:
        reading.reset(token)
    if not any(block.text.strip() for block in document.blocks):
        raise LoadError("no text", skip=True)
    return document
