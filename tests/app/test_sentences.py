"""The one sentence splitter: where sentences of a Markdown answer end, and where markers go."""

from __future__ import annotations

import pytest

from quarry.app.sentences import Sentence, insert_markers, split_sentences

FENCED = (
    "Build the workspace first.\n"
    "```rust\n"
    "fn main() {\n"
    '    println!("Hi. There. e.g. 3. Done!");\n'
    "}\n"
    "```\n"
    "Then run the tests.\n"
)


def texts(text: str) -> list[str]:
    return [s.text for s in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("Really?! Yes... Done.", ["Really?!", "Yes...", "Done."]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("It works (mostly.) Ship it.", ["It works (mostly.)", "Ship it."]),
        (
            "Curly \u2018quotes.\u2019 And \u201cdoubles.\u201d End.",
            ["Curly \u2018quotes.\u2019", "And \u201cdoubles.\u201d", "End."],
        ),
        ("**Bold sentence.** Plain one.", ["**Bold sentence.**", "Plain one."]),
        ("No space.Here it is", ["No space.Here it is"]),
    ],
)
def test_ends_at_punctuation_followed_by_whitespace(text: str, expected: list[str]) -> None:
    assert texts(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sentence. [1][2] Next one.", ["Sentence. [1][2]", "Next one."]),
        ("Sentence [1]. Next [2, 3].", ["Sentence [1].", "Next [2, 3]."]),
        ("Sentence.[4] Next.", ["Sentence.[4]", "Next."]),
        ("A list item [1]\nNext line", ["A list item [1]", "Next line"]),
    ],
)
def test_citation_markers_belong_to_the_sentence_before(text: str, expected: list[str]) -> None:
    assert texts(text) == expected


def test_every_line_break_ends_a_sentence() -> None:
    text = "## Setup\n\nFirst install it\n- one item\n- another item\n\nA paragraph"
    assert texts(text) == ["Setup", "First install it", "one item", "another item", "A paragraph"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# Title\n## Sub title", ["Title", "Sub title"]),
        ("- dash\n* star\n+ plus", ["dash", "star", "plus"]),
        ("1. First. Really.\n2) Second", ["First.", "Really.", "Second"]),
        ("> quoted. Twice\n> - nested item", ["quoted.", "Twice", "nested item"]),
        ("3.12 is needed\n#hashtag stays", ["3.12 is needed", "#hashtag stays"]),
    ],
)
def test_list_heading_and_quote_markers_are_not_part_of_the_sentence(
    text: str, expected: list[str]
) -> None:
    assert texts(text) == expected


@pytest.mark.parametrize(
    "sentence",
    [
        "Quarry needs Python 3.12 or newer.",
        "Set the threshold to 0.25 first.",
        "Upgrade to v1.2.3 before you start.",
        "The page listens on 127.0.0.1:8000 by default.",
        "Edit main.rs and pyproject.toml first.",
        "Call os.path.join on both parts.",
        "Settings live in quarry.toml next to the data.",
        "See https://example.com/a.b?c=d for the details.",
        "Formats (PDF, DOCX, etc.) are read alike.",
    ],
)
def test_never_splits_inside_a_token(sentence: str) -> None:
    assert texts(f"{sentence} Next one.") == [sentence, "Next one."]


@pytest.mark.parametrize(
    "sentence",
    [
        "Pick a port, e.g. the port 8001.",
        "Use a small model, i.e. the default one.",
        "E.g. this one and I.e. that one.",
        "Read PDF, DOCX, etc. and plain text.",
        "Chroma vs. a flat file is compared.",
        "The result cf. the baseline is close.",
        "Dr. Smith, Mr. Jones and Mrs. Lee agree.",
        "See No. 5 in Fig. 3 for the curve.",
        "It takes approx. ten seconds.",
    ],
)
def test_abbreviations_do_not_end_a_sentence(sentence: str) -> None:
    assert texts(f"{sentence} Next one.") == [sentence, "Next one."]


def test_etc_ends_a_sentence_when_a_new_one_starts() -> None:
    assert texts("It reads PDF, DOCX, etc. Quarry indexes them.") == [
        "It reads PDF, DOCX, etc.",
        "Quarry indexes them.",
    ]
    assert texts("Is it on? No. It is off.") == ["Is it on?", "No.", "It is off."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Wait... then it loads.", ["Wait... then it loads."]),
        ("Wait… then it loads.", ["Wait… then it loads."]),
        ("It loads... Then it stops.", ["It loads...", "Then it stops."]),
    ],
)
def test_ellipsis_before_a_lowercase_word_does_not_end(text: str, expected: list[str]) -> None:
    assert texts(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Run `integration_test.rs` first. Then stop.", ["Run `integration_test.rs` first."]),
        ("Type `a. b` here. Then stop.", ["Type `a. b` here."]),
        ("Type ``a `. b`` here. Then stop.", ["Type ``a `. b`` here."]),
        ("Use e.g. `--port 8001`. Then stop.", ["Use e.g. `--port 8001`."]),
    ],
)
def test_inline_code_is_kept_whole(text: str, expected: list[str]) -> None:
    assert texts(text) == [*expected, "Then stop."]


def test_fenced_code_blocks_produce_no_sentence() -> None:
    assert texts(FENCED) == ["Build the workspace first.", "Then run the tests."]
    tilde = "Before.\n~~~\nnot. a. sentence.\n~~~\nAfter."
    assert texts(tilde) == ["Before.", "After."]
    indented = "- Step one:\n  ```sh\n  make test. Done.\n  ```\n- Step two"
    assert texts(indented) == ["Step one:", "Step two"]


def test_a_fence_still_open_at_the_end_produces_no_sentence() -> None:
    assert texts("Run this:\n```python\nprint('Hi. There.')\nx = 1. ") == ["Run this:"]


def test_inline_triple_backticks_are_not_a_fence() -> None:
    assert texts("```code. here``` is inline. Next.") == ["```code. here``` is inline.", "Next."]


@pytest.mark.parametrize(
    "text",
    ["[1][2]", "Sentence.\n[3]\n", "...", "  \n\n ", "---", "|---|:---:|", "", "**"],
)
def test_sentences_without_a_word_are_not_returned(text: str) -> None:
    assert [t for t in texts(text) if t != "Sentence."] == []


@pytest.mark.parametrize(
    "text",
    [
        FENCED,
        "  Lead space. Trail space.  \r\n\r\nWindows line.\r\n",
        "## Setup\n1. Install `uv`. Run it [1].\n> Quote... then more.",
    ],
)
def test_offsets_point_into_the_original_text(text: str) -> None:
    sentences = split_sentences(text)
    assert sentences
    for sentence in sentences:
        assert sentence.text == text[sentence.start : sentence.end]
        assert sentence.text == sentence.text.strip()
    assert [s.start for s in sentences] == sorted(s.start for s in sentences)


def test_sentence_is_a_frozen_value() -> None:
    sentence = split_sentences("Hello there.")[0]
    assert sentence == Sentence(0, 12, "Hello there.")
    with pytest.raises(AttributeError):
        sentence.start = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "markers", "expected"),
    [
        (
            "The chat page listens on 127.0.0.1 by default.",
            {0: "[1]"},
            "The chat page listens on 127.0.0.1 by default. [1]",
        ),
        ("Run `integration_test.rs` first.", {0: "[1]"}, "Run `integration_test.rs` first. [1]"),
        (
            "Use e.g. `--port 8001`. Then restart.",
            {0: "[1]", 1: "[2]"},
            "Use e.g. `--port 8001`. [1] Then restart. [2]",
        ),
        ("First one. Second one.", {1: "[2]"}, "First one. Second one. [2]"),
        ("Already cited. [1] Next.", {0: "[2]"}, "Already cited. [1] [2] Next."),
        ("No markers at all.", {}, "No markers at all."),
    ],
)
def test_markers_go_right_after_the_sentence(
    text: str, markers: dict[int, str], expected: str
) -> None:
    assert insert_markers(text, markers) == expected


def test_a_marker_for_a_line_goes_before_the_line_break() -> None:
    text = "## Setup\n\n- Install it\n- Run it.  \n\nDone"
    marked = insert_markers(text, {0: "[1]", 1: "[2]", 2: "[3]", 3: "[4]"})
    assert marked == "## Setup [1]\n\n- Install it [2]\n- Run it. [3]  \n\nDone [4]"


def test_markers_never_touch_a_code_block() -> None:
    marked = insert_markers(FENCED, {0: "[1]", 1: "[2]"})
    assert marked == FENCED.replace("first.", "first. [1]").replace("tests.", "tests. [2]")
    start, end = FENCED.index("```rust"), FENCED.rindex("```") + 3
    assert marked[start + 4 : end + 4] == FENCED[start:end]  # shifted by " [1]" only
    assert "```rust\n" in marked and "```rust [" not in marked


def test_the_text_is_otherwise_unchanged() -> None:
    text = "Intro line\n\n1. Step `a. b` here.\n```\ncode.\n```\nLast e.g. one.  "
    count = len(split_sentences(text))
    marked = insert_markers(text, {i: f"[{i + 1}]" for i in range(count)})
    for i in range(count):
        marked = marked.replace(f" [{i + 1}]", "", 1)
    assert marked == text


def test_an_unknown_sentence_index_is_an_error() -> None:
    with pytest.raises(IndexError):
        insert_markers("Only one.", {1: "[1]"})
    with pytest.raises(IndexError):
        insert_markers("Only one.", {-1: "[1]"})


def test_a_hard_wrapped_paragraph_is_split_by_sentence_not_by_line() -> None:
    text = (
        "Quarry keeps collections under the data folder and\n"
        "logs beside them. Set QUARRY_DATA_DIR to move\n"
        "both.\n"
        "- a list item\n"
        "- another one"
    )
    assert texts(text) == [
        "Quarry keeps collections under the data folder and\nlogs beside them.",
        "Set QUARRY_DATA_DIR to move\nboth.",
        "a list item",
        "another one",
    ]
