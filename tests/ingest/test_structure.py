"""Tables and code blocks survive loading and chunking whole (pure functions and real files;
only the tokenizer is loaded).

Each case is checked against the plain windows the splitter used before it knew about
units (`TokenSplitter.windows` without units): the test first shows that those cut the
table or code block, then that the chunks keep it in one piece.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from quarry.ingest.embedding import Embedder
from quarry.ingest.loaders import load
from quarry.ingest.records import Chunk, LoadedDocument, Markup, TextBlock
from quarry.ingest.splitting import TokenSplitter, chunk_document, units
from tests.ingest.conftest import write_pdf

PROSE = " ".join(
    f"Sentence {i} says something about the allotment and its {i % 5} sheds." for i in range(7)
)

MD_TABLE = """\
| Crop | Bed | Yield |
| --- | --- | ---: |
| Tomato | north | 42 kg |
| Bean | south | 17 kg |
| Leek | east | 9 kg |"""

MD_FENCE = """\
```python
def harvest(bed):
    crops = bed.ripe()

    return sum(crop.weight for crop in crops)
```"""

RST_GRID = """\
+--------+-------+
| Crop   | Yield |
+========+=======+
| Tomato | 42 kg |
+--------+-------+
| Bean   | 17 kg |
| (dwarf)|       |
+--------+-------+"""

RST_SIMPLE = """\
======  =====
Crop    Yield
======  =====
Tomato  42 kg
Bean    17 kg
Leek     9 kg
======  ====="""

RST_LITERAL = """\
The harvest is weighed like this::

    def harvest(bed):
        crops = bed.ripe()

        return sum(crop.weight for crop in crops)"""

RST_DIRECTIVE = """\
.. code-block:: python
   :linenos:

   def harvest(bed):
       crops = bed.ripe()

       return sum(crop.weight for crop in crops)"""

RST_LIST_TABLE = """\
.. list-table::
   :header-rows: 1

   * - Crop
     - Yield
   * - Tomato
     - 42 kg
   * - Bean
     - 17 kg"""


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return Embedder("sentence-transformers/all-MiniLM-L6-v2").tokenizer


def _tokens(tokenizer: object, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])  # type: ignore[operator]


def _chunks(text: str, markup: Markup, splitter: TokenSplitter) -> list[Chunk]:
    return chunk_document(LoadedDocument("t", markup, [TextBlock(text)]), splitter)


def _whole_in_one(chunks: list[Chunk], unit: str) -> bool:
    return any(unit.strip() in chunk.text for chunk in chunks)


def _old_cuts(text: str, unit: str, splitter: TokenSplitter) -> bool:
    """Whether unit-blind windows over `text` (one section) leave `unit` in no window whole."""
    start = text.index(unit)
    spans = splitter.windows(text, splitter.offsets(text))
    return not any(a <= start and start + len(unit) <= b for a, b, _ in spans)


def _assert_kept_whole(tokenizer: object, text: str, unit: str, markup: Markup) -> None:
    """At every chunk size the unit fits in, no chunk cuts it; at some, the old windows did."""
    need = _tokens(tokenizer, unit)
    cut_before = []
    for size in range(need, need + 60):
        splitter = TokenSplitter(tokenizer, size, size // 6)
        chunks = _chunks(text, markup, splitter)
        assert _whole_in_one(chunks, unit), (size, [c.text for c in chunks])
        assert all(_tokens(tokenizer, c.text) <= size for c in chunks)
        cut_before.append(_old_cuts(text, unit, splitter))
    assert any(cut_before), "the old windows never cut this unit: the test proves nothing"


@pytest.mark.parametrize(
    ("markup", "unit"),
    [
        ("markdown", MD_TABLE),
        ("markdown", MD_FENCE),
        ("plain", MD_TABLE),  # PDF pages are plain text with pipe tables
        ("rst", RST_GRID),
        ("rst", RST_SIMPLE),
        ("rst", RST_LITERAL),
        ("rst", RST_DIRECTIVE),
        ("rst", RST_LIST_TABLE),
    ],
    ids=["md-table", "md-fence", "plain-table", "grid", "simple", "literal", "code-block", "list"],
)
def test_table_or_code_block_stays_whole(tokenizer: object, markup: Markup, unit: str) -> None:
    text = f"{PROSE}\n\n{unit}\n\n{PROSE}\n"
    _assert_kept_whole(tokenizer, text, unit, markup)


def test_units_found_per_markup() -> None:
    rst = f"{RST_GRID}\n\n{RST_SIMPLE}\n\n{RST_LITERAL}\n\n{RST_DIRECTIVE}\n\n{RST_LIST_TABLE}\n"
    found = units(rst, "rst")
    assert [rst[u.start : u.end].strip() for u in found] == [
        RST_GRID,
        RST_SIMPLE,
        RST_LITERAL,
        RST_DIRECTIVE,
        RST_LIST_TABLE,
    ]
    assert [u.head for u in found] == [
        "+--------+-------+\n| Crop   | Yield |\n+========+=======+\n",
        "======  =====\nCrop    Yield\n======  =====\n",
        "::\n\n",
        ".. code-block:: python\n   :linenos:\n\n",
        ".. list-table::\n   :header-rows: 1\n\n   * - Crop\n     - Yield\n",
    ]
    notes = ".. note::\n\n   An admonition, not code.\n\nA line with a pipe | but no table.\n"
    assert units(notes, "rst") == [] and units(notes, "markdown") == []
    md = f"{MD_TABLE}\n\ntext\n\n{MD_FENCE}\n"
    assert [md[u.start : u.end].strip() for u in units(md, "markdown")] == [MD_TABLE, MD_FENCE]


def test_heading_inside_a_long_fence_is_not_a_heading(tokenizer: object) -> None:
    fence = "````md\n# not a heading\n```\nstill code\n```\n````"
    text = f"# Title\n\n{PROSE}\n\n{fence}\n\n{PROSE}\n"
    chunks = _chunks(text, "markdown", TokenSplitter(tokenizer, 60, 8))
    assert {c.heading_path for c in chunks} == {("Title",)}
    assert _whole_in_one(chunks, fence)


def _table_rows(n: int) -> list[str]:
    return [f"| crop {i} | bed {i % 4} | {i} kg |" for i in range(n)]


def test_oversized_markdown_table_is_cut_between_rows_with_the_header_repeated(
    tokenizer: object,
) -> None:
    header = "| Crop | Bed | Yield |\n| --- | --- | --- |"
    rows = _table_rows(40)
    text = f"{PROSE}\n\n{header}\n" + "\n".join(rows) + f"\n\n{PROSE}\n"
    chunks = _chunks(text, "markdown", TokenSplitter(tokenizer, 64, 8))
    pieces = [c for c in chunks if "| crop " in c.text]
    assert len(pieces) > 3
    for piece in pieces:
        assert piece.text.startswith(header + "\n| crop ")
        assert _tokens(tokenizer, piece.text) <= 64
        assert piece.tokens == _tokens(tokenizer, piece.text)
        assert text[piece.start : piece.end] in piece.text  # the span is what it covers
    lines = [line for piece in pieces for line in piece.text.splitlines()[2:]]
    assert lines == rows  # every row whole, once, in order


def test_oversized_code_is_cut_between_lines_and_each_piece_is_fenced(tokenizer: object) -> None:
    code = [f"    total_{i} = weigh(bed_{i}) + total_{i - 1}" for i in range(40)]
    fence = "```python\ndef harvest():\n" + "\n".join(code) + "\n```"
    chunks = _chunks(f"{PROSE}\n\n{fence}\n", "markdown", TokenSplitter(tokenizer, 64, 8))
    pieces = [c for c in chunks if "total_" in c.text]
    assert len(pieces) > 3
    for piece in pieces:
        assert piece.text.startswith("```python\n") and piece.text.endswith("\n```")
        assert _tokens(tokenizer, piece.text) <= 64
    lines = [line for piece in pieces for line in piece.text.splitlines()[1:-1]]
    assert lines == ["def harvest():", *code]


def test_oversized_rst_tables_repeat_their_header(tokenizer: object) -> None:
    border = "+----------+--------+"
    grid = [border, "| Crop     | Yield  |", "+==========+========+"]
    for i in range(30):
        grid += [f"| crop {i:<3} | {i:>3} kg |", border]
    simple = ["========  ======", "Crop      Yield", "========  ======"]
    simple += [f"crop {i:<3}  {i:>3} kg" for i in range(60)] + ["========  ======"]
    text = "\n".join(grid) + "\n\n" + "\n".join(simple) + "\n"
    chunks = _chunks(text, "rst", TokenSplitter(tokenizer, 128, 16))  # grid borders cost tokens
    grid_pieces = [c for c in chunks if c.text.startswith("+--")]
    simple_pieces = [c for c in chunks if c.text.startswith("========")]
    assert len(grid_pieces) > 2 and len(simple_pieces) > 2
    assert all(c.text.startswith("\n".join(grid[:3])) for c in grid_pieces)
    assert all(c.text.endswith("kg |\n" + border) for c in grid_pieces)
    assert all(c.text.startswith("\n".join(simple[:3])) for c in simple_pieces)
    assert all(c.text.endswith("kg\n========  ======") for c in simple_pieces)
    assert all(_tokens(tokenizer, c.text) <= 128 for c in chunks)


def test_oversized_literal_block_pieces_stay_literal(tokenizer: object) -> None:
    code = [f"    total_{i} = weigh(bed_{i})" for i in range(40)]
    text = "Weigh every bed::\n\n" + "\n".join(code) + "\n\nThat is all.\n"
    chunks = _chunks(text, "rst", TokenSplitter(tokenizer, 48, 8))
    pieces = [c for c in chunks if "total_" in c.text]
    assert pieces[0].text.startswith("Weigh every bed::\n\n    total_0")
    assert all(c.text.startswith("::\n\n    total_") for c in pieces[1:])
    lines = [line for c in pieces for line in c.text.splitlines() if "total_" in line]
    assert lines == code


# -- formats: loaders write tables and code as Markdown, the splitter keeps them whole ------


def _load(path: Path) -> LoadedDocument:
    return load(path, path.read_bytes())


HTML = f"""<html><head><title>Allotment</title></head><body>
<h1>Allotment</h1><p>{PROSE}</p>
<table><thead><tr><th>Crop</th><th>Bed</th><th>Yield</th></tr></thead><tbody>
<tr><td>Tomato</td><td>north</td><td>42 kg</td></tr>
<tr><td>Bean</td><td colspan="2">south | shared</td></tr>
<tr><td>Leek</td><td>east</td><td>9 kg</td></tr></tbody></table>
<p>{PROSE}</p>
<pre><code class="language-python">def harvest(bed):
    crops = bed.ripe()
    return sum(crop.weight for crop in crops)</code></pre>
<p>{PROSE}</p>
</body></html>
"""

HTML_TABLE = """\
| Crop | Bed | Yield |
| --- | --- | --- |
| Tomato | north | 42 kg |
| Bean | south \\| shared |  |
| Leek | east | 9 kg |"""

HTML_CODE = """\
```python
def harvest(bed):
    crops = bed.ripe()
    return sum(crop.weight for crop in crops)
```"""


def test_html_tables_and_pre_become_markdown_and_stay_whole(
    tmp_path: Path, tokenizer: object
) -> None:
    (tmp_path / "a.html").write_text(HTML)
    document = _load(tmp_path / "a.html")
    text = document.blocks[0].text
    assert HTML_TABLE in text and HTML_CODE in text
    assert document.markup == "markdown"
    _assert_kept_whole(tokenizer, text, HTML_TABLE, "markdown")
    _assert_kept_whole(tokenizer, text, HTML_CODE, "markdown")


def test_docx_tables_are_pipe_tables_in_body_order(tmp_path: Path, tokenizer: object) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph(PROSE)
    table = document.add_table(rows=4, cols=3)
    cells = [["Crop", "Bed", "Yield"], ["Tomato", "north", "42 kg"], ["Bean", "south", ""]]
    cells.append(["Leek", "east", "9 kg"])
    for r, row in enumerate(cells):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(2, 1).merge(table.cell(2, 2))
    document.add_paragraph("The table above was weighed in October.")
    document.add_paragraph(PROSE)
    document.save(str(tmp_path / "a.docx"))
    text = _load(tmp_path / "a.docx").blocks[0].text
    expected = MD_TABLE.replace("| ---: |", "| --- |").replace("| south | 17 kg |", "| south |  |")
    assert expected in text  # the merged cell's text once, its columns kept
    assert text.index(PROSE) < text.index("| Crop |") < text.index("weighed in October")
    _assert_kept_whole(tokenizer, text, expected, "markdown")


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_table_pdf(path: Path, pages: list[tuple[list[str], list[list[str]], list[str]]]) -> Path:
    """A PDF whose pages hold (lines above, a table ruled with rectangles, lines below)."""
    streams = []
    for above, rows, below in pages:
        ops, y = [], 740
        for line in above:
            ops.append(f"BT /F1 11 Tf 72 {y} Td {_pdf_string(line)} Tj ET")
            y -= 16
        for row in rows:
            y -= 20
            for c, cell in enumerate(row):
                x = 72 + 150 * c
                ops.append(f"{x} {y - 6} 150 20 re S")
                ops.append(f"BT /F1 10 Tf {x + 4} {y} Td {_pdf_string(cell)} Tj ET")
        y -= 30
        for line in below:
            ops.append(f"BT /F1 11 Tf 72 {y} Td {_pdf_string(line)} Tj ET")
            y -= 16
        streams.append("\n".join(ops))
    return write_pdf(path, streams)


def test_pdf_ruled_table_is_a_pipe_table_on_its_page(tmp_path: Path, tokenizer: object) -> None:
    rows = [["Crop", "Bed", "Yield"], ["Tomato", "north", "42 kg"], ["Bean", "south", "17 kg"]]
    rows.append(["Leek", "east", "9 kg"])
    prose = [PROSE[i : i + 80] for i in range(0, len(PROSE), 80)]
    path = make_table_pdf(
        tmp_path / "a.pdf", [(["A page of plain text."], [], []), (prose, rows, prose)]
    )
    document = _load(path)
    assert [block.page for block in document.blocks] == [1, 2]
    assert document.blocks[0].text.strip() == "A page of plain text."
    page = document.blocks[1].text
    expected = MD_TABLE.replace("| ---: |", "| --- |")
    assert expected in page
    assert page.index(prose[-1]) < page.index("| Crop |") < page.rindex(prose[0])
    _assert_kept_whole(tokenizer, page, expected, "plain")
    chunks = chunk_document(document, TokenSplitter(tokenizer, 64, 8))
    assert [c.page for c in chunks if expected in c.text] == [2]
