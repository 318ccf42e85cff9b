"""Citation checks, attribution and evidence with the real embedding model."""

from __future__ import annotations

import re

import pytest

from quarry.app.citation_check import (
    MAX_EVIDENCE_SPANS,
    attribute,
    check_citations,
    cited_sentences,
    find_evidence,
    invented,
    lexical_support,
    unsupported_sentences,
)
from quarry.app.citations import Citation
from quarry.app.retrieval import Passage
from quarry.app.sentences import split_sentences
from quarry.ingest.embedding import Embedder

PORTS = Passage(
    "c1",
    "The model server listens on port 8000 by default. Change it with the --port flag.",
    "configuration.md", "", "", None, 0, 0.8,
)  # fmt: skip
PRESETS = Passage(
    "c2", "Factual (0) always gives the same answer.", "chat.md", "", "", None, 3, 0.6
)

# Chunks as ingest makes them from docs/configuration.md: hard-wrapped, with a heading; the
# first has a ```toml block and runs into the next section.
PORT_SECTIONS = Passage(
    "c-port",
    "## Changing the port of the model server\n"
    "\n"
    "The model server listens on port 8000 by default. Change it with the `--port` flag of\n"
    "`quarry serve`, with the variable `QUARRY_SERVER_PORT=8001`, or in `quarry.toml`:\n"
    "\n"
    "```toml\n"
    "[server]\n"
    "port = 8001\n"
    "```\n"
    "\n"
    "The chat page reads the same setting, so both agree on where the server is.\n"
    "\n"
    "## Changing the port of the chat page\n"
    "\n"
    "The chat page listens on 127.0.0.1, port 8501. Set `QUARRY_CHAT_UI_PORT` to move it, and\n"
    "`QUARRY_CHAT_UI_HOST=0.0.0.0` only if other machines on your network should reach it.",
    "configuration.md", "", "Changing the port of the model server", None, 1, 0.7,
)  # fmt: skip
API_KEY = Passage(
    "c-key",
    "## Requiring an API key\n"
    "\n"
    "Set `QUARRY_SERVER_API_KEY` (or `api_key` under `[server]`) before starting the server. vLLM\n"
    "then refuses requests without the key, and the chat page sends it. The key is passed to vLLM\n"
    "through its environment, never on the command line, so it does not show in `ps`.",
    "configuration.md", "", "Requiring an API key", None, 2, 0.6,
)  # fmt: skip
TOOLCHAIN = Passage(
    "c3",
    "Quarry needs Python 3.12 or newer. Install it with `uv python install 3.12` first.\n\n"
    "The route handlers live in main.rs; edit main.rs to add a route and rebuild with\n"
    "`cargo build`. Run the integration tests with `cargo test --test integration_test`;\n"
    "they live in `tests/integration_test.rs`.",
    "rust.md", "", "Building", None, 0, 0.7,
)  # fmt: skip


@pytest.fixture
def encode_calls(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of texts in each `embedder.encode` call made during the test."""
    calls: list[int] = []
    encode = embedder.encode

    def counting(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        return encode(texts)

    monkeypatch.setattr(embedder, "encode", counting)
    return calls


def test_sentences_and_the_numbers_they_cite() -> None:
    answer = "The server uses port 8000 [1]. Presets vary [2][1]. No citation here."
    assert cited_sentences(answer) == [
        ("The server uses port 8000 .", [1]),
        ("Presets vary .", [2, 1]),
    ]


def test_cited_sentences_keep_tokens_and_code_whole() -> None:
    answer = (
        "It listens on 127.0.0.1 by default [1]. Edit `main.rs` for Python 3.12 [2].\n"
        "```sh\nquarry serve --port 8001 [3]. Done.\n```\n"
    )
    assert cited_sentences(answer) == [
        ("It listens on 127.0.0.1 by default .", [1]),
        ("Edit `main.rs` for Python 3.12 .", [2]),
    ]


def test_lexical_support_counts_content_words() -> None:
    assert lexical_support("The server listens on port 8000", PORTS.text) == 1.0
    assert lexical_support("Bananas are yellow", PORTS.text) == 0.0


def test_a_supported_and_an_unsupported_citation(embedder: Embedder) -> None:
    answer = "Change the server's port with the --port flag [1]. Bananas grow in Ecuador [2]."
    checks = check_citations(answer, [Citation(1, PORTS), Citation(2, PRESETS)], embedder)
    assert [(c.number, c.supported) for c in checks] == [(1, True), (2, False)]
    assert checks[0].similarity > checks[1].similarity
    assert all(type(c.similarity) is float for c in checks)


def test_no_citations_no_checks(embedder: Embedder) -> None:
    assert check_citations("Nothing cited.", [Citation(1, PORTS)], embedder) == []


def test_a_model_that_cites_nothing_gets_citations_where_supported(embedder: Embedder) -> None:
    answer = "Change the port with the --port flag.\nBananas grow in Ecuador."
    attributed = attribute(answer, [PRESETS, PORTS], embedder)
    assert attributed == "Change the port with the --port flag. [2]\nBananas grow in Ecuador."


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            "The chat page listens on 127.0.0.1, port 8501, by default. "
            "Set QUARRY_CHAT_UI_PORT to move it.",
            "The chat page listens on 127.0.0.1, port 8501, by default. [1] "
            "Set QUARRY_CHAT_UI_PORT to move it. [1]",
        ),
        ("Quarry needs Python 3.12 or newer.", "Quarry needs Python 3.12 or newer. [3]"),
        (
            "Add the route in main.rs and rebuild with cargo build.",
            "Add the route in main.rs and rebuild with cargo build. [3]",
        ),
        (
            "The integration tests live in `tests/integration_test.rs`. "
            "Run them with `cargo test --test integration_test`.",
            "The integration tests live in `tests/integration_test.rs`. [3] "
            "Run them with `cargo test --test integration_test`. [3]",
        ),
        (
            "Set the port in quarry.toml:\n```toml\n[server]\nport = 8001\n```\n"
            "The chat page reads the same setting, so both agree on where the server is.",
            "Set the port in quarry.toml: [1]\n```toml\n[server]\nport = 8001\n```\n"
            "The chat page reads the same setting, so both agree on where the server is. [1]",
        ),
    ],
)
def test_attribution_never_puts_a_marker_inside_a_token_or_code(
    embedder: Embedder, answer: str, expected: str
) -> None:
    attributed = attribute(answer, [PORT_SECTIONS, API_KEY, TOOLCHAIN], embedder)
    assert attributed == expected
    assert re.sub(r" \[\d\]", "", attributed) == answer  # only markers were added
    for token in ("127.0.0.1", "3.12", "main.rs", "`tests/integration_test.rs`", "```toml\n"):
        assert attributed.count(token) == answer.count(token)


def test_attribution_without_a_supporting_passage_changes_nothing(embedder: Embedder) -> None:
    answer = "Bananas grow in Ecuador.\n```rust\nfn main() {}\n```\n"
    assert attribute(answer, [PORT_SECTIONS, API_KEY], embedder) == answer
    assert attribute(answer, [], embedder) == answer


def spans_text(passage: Passage, spans: list[tuple[int, int]]) -> list[str]:
    return [passage.text[start:end] for start, end in spans]


def test_evidence_is_the_supporting_sentence_of_the_passage(
    embedder: Embedder, encode_calls: list[int]
) -> None:
    evidence = find_evidence(
        "Pass --port or set QUARRY_SERVER_PORT [1].", [Citation(1, PORT_SECTIONS)], embedder
    )
    assert spans_text(PORT_SECTIONS, evidence[1]) == [
        "Change it with the `--port` flag of\n`quarry serve`, with the variable "
        "`QUARRY_SERVER_PORT=8001`, or in `quarry.toml`:"
    ]
    assert len(encode_calls) == 1


def test_evidence_of_neighbouring_sentences_is_one_span(embedder: Embedder) -> None:
    answer = "The model server listens on port 8000 by default [1]. Pass --port to change it [1]."
    evidence = find_evidence(answer, [Citation(1, PORT_SECTIONS)], embedder)
    assert spans_text(PORT_SECTIONS, evidence[1]) == [
        "The model server listens on port 8000 by default. Change it with the `--port` flag of\n"
        "`quarry serve`, with the variable `QUARRY_SERVER_PORT=8001`, or in `quarry.toml`:"
    ]


def test_evidence_for_each_number_at_most_two_sorted_spans(
    embedder: Embedder, encode_calls: list[int]
) -> None:
    answer = (
        "The model server listens on port 8000 by default [1]. "
        "The chat page reads the same setting [1]. "
        "The chat page listens on 127.0.0.1, port 8501 [1][2]. "
        "The key never shows in ps since it goes through the environment [2]."
    )
    citations = [Citation(1, PORT_SECTIONS), Citation(2, API_KEY)]
    evidence = find_evidence(answer, citations, embedder)
    assert len(encode_calls) == 1
    assert spans_text(PORT_SECTIONS, evidence[1]) == [
        "The model server listens on port 8000 by default.",
        "The chat page listens on 127.0.0.1, port 8501.",
    ]
    assert spans_text(API_KEY, evidence[2]) == [
        "The key is passed to vLLM\nthrough its environment, never on the command line, "
        "so it does not show in `ps`."
    ]
    for citation in citations:
        spans = evidence[citation.number]
        sentences = {(s.start, s.end) for s in split_sentences(citation.passage.text)}
        covered = [s for s in sentences if any(a <= s[0] and s[1] <= b for a, b in spans)]
        assert spans == sorted(set(spans)) and len(covered) <= MAX_EVIDENCE_SPANS
        assert all(
            a in {s[0] for s in sentences} and b in {s[1] for s in sentences} for a, b in spans
        )


def test_no_evidence_for_an_unsupported_citation(embedder: Embedder) -> None:
    citations = [Citation(1, PORT_SECTIONS), Citation(2, API_KEY), Citation(3, PRESETS)]
    # One sentence of the API key section is close to this one (it sets a server variable),
    # but the section does not support it: the check flags the citation, nothing is lit.
    wrong = "Pass --port to quarry serve [2]."
    assert [c.supported for c in check_citations(wrong, citations, embedder)] == [False]
    assert find_evidence(wrong, citations, embedder) == {}
    assert find_evidence("Bananas grow in Ecuador [3].", citations, embedder) == {}
    assert find_evidence("Nothing cited here.", citations, embedder) == {}
    assert find_evidence("A number with no passage [7].", citations, embedder) == {}
    both = find_evidence("Pass --port to quarry serve [1][2].", citations, embedder)
    assert list(both) == [1]


def test_headings_are_never_evidence(embedder: Embedder) -> None:
    evidence = find_evidence(
        "You can change the port of the model server [1].", [Citation(1, PORT_SECTIONS)], embedder
    )
    lit = spans_text(PORT_SECTIONS, evidence[1])
    assert lit and not any("Changing the port" in text for text in lit)


def test_unsupported_sentences_are_the_invented_ones(
    embedder: Embedder, encode_calls: list[int]
) -> None:
    answer = (
        "## Changing the port of the server\n\n"
        "The model server listens on port 8000 by default [1]. "
        "Quarry encrypts every passage with AES-256 before storing it [1]. Yes.\n"
        "- The key never shows in `ps`: it is passed through the environment [2]."
    )
    flagged = unsupported_sentences(answer, [PORT_SECTIONS, API_KEY], embedder)
    assert [s.text for s in flagged] == [
        "Quarry encrypts every passage with AES-256 before storing it [1]."
    ]
    assert all(answer[s.start : s.end] == s.text for s in flagged)
    assert len(encode_calls) == 1


def test_without_passages_every_prose_sentence_is_unsupported(embedder: Embedder) -> None:
    answer = "Sure. The model server listens on port 8000 by default. Set it with `--port`."
    assert [s.text for s in unsupported_sentences(answer, [], embedder)] == [
        "The model server listens on port 8000 by default."
    ]
    assert unsupported_sentences("", [PORT_SECTIONS], embedder) == []


def test_a_sentence_stating_what_the_passage_does_not_is_not_supported(
    embedder: Embedder,
) -> None:
    text = (
        "The chat page listens on 127.0.0.1, port 8501. Set `QUARRY_CHAT_UI_PORT` to move it, "
        "or change the server with the `--port` flag (`QUARRY_SERVER_PORT=8001`)."
    )
    assert invented("The chat page listens on port 12345 by default [1].", text) == ["12345"]
    assert invented("Set QUARRY_CHAT_UI_PORT or pass `--port 8001` [1].", text) == []
    assert invented("Use `--host` and QUARRY_CHAT_HOST.", text) == ["--host", "QUARRY_CHAT_HOST"]
    passage = Passage("c1", text, "configuration.md", "", "", None, 0, 0.9)
    wrong = "The chat page listens on port 12345 by default [1]."
    (check,) = check_citations(wrong, [Citation(1, passage)], embedder)
    assert check.invented == ("12345",) and not check.supported
    assert attribute("The chat page listens on port 12345 by default.", [passage], embedder) == (
        "The chat page listens on port 12345 by default."
    )
    assert [s.text for s in unsupported_sentences(wrong, [passage], embedder)] == [wrong]
