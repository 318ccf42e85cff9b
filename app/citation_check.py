"""Does each cited passage support the sentence that cites it?

Two cheap signals, computed after the answer is complete: the share of the sentence's
content words found in the passage (lexical), and the cosine similarity of their embeddings
(with the collection's own model). A citation is supported when either is high enough; the
rest are flagged in the page and counted by `quarry eval answers`.

The same test also adds markers for a model that cites nothing (`attribute`), finds the
sentences of the answer that no passage supports (`unsupported_sentences`) and, sentence
against sentence, the evidence the page highlights inside each cited passage
(`find_evidence`). Sentences are always those of `app.sentences`, so a marker never lands
inside `127.0.0.1`, `main.rs`, inline code or a code block.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from langchain_core.messages import HumanMessage

from quarry.app.citations import MARKER_RE, Citation
from quarry.app.prompts import render
from quarry.app.retrieval import Passage
from quarry.app.sentences import Sentence, insert_markers, split_sentences
from quarry.ingest.embedding import Embedder

WORD_RE = re.compile(r"[a-z0-9][a-z0-9_\-]{2,}")
STOPWORDS = frozenset(
    """the and for are but not you your with that this from they have has can will what when
    which how use uses used into its their them then than there here also only more most
    such been was were does did done all any each other some very just about""".split()  # noqa: SIM905
)
MIN_LEXICAL = 0.5
MIN_SIMILARITY = 0.45
MIN_PROSE_WORDS = 3  # fewer content words: a heading, "Yes.", a list label; never flagged
MAX_EVIDENCE_SPANS = 2  # highlighted sentences per cited passage

_UNDERLINE = re.compile(r"[ \t]*([=\-~^*+#])\1+[ \t]*\r?")  # setext and RST headings
_HEADING = re.compile(r"[ \t]*(?:>[ \t]*)*#{1,6}(?:[ \t]|$)")


# What a sentence states exactly and a passage must state too: numbers and versions
# (8501, 127.0.0.1, 3.12), inline code, flags (--port), constants (QUARRY_SERVER_PORT).
_SPECIFIC = re.compile(
    r"`([^`\n]+)`"
    r"|(?<![\w.-])(--?[A-Za-z][\w-]*|[A-Z][A-Z0-9]*_[A-Z0-9_]+|\d[\d.:,]*\d|\d)(?![\w-])"
)


def invented(sentence: str, passage: str) -> list[str]:
    """The exact things the sentence states that the passage does not contain: the small
    model writes "listens on port 12345" from a passage that says 8501, and words and
    meaning alone still find that close."""
    text = passage.lower()
    found = [
        piece  # inline code, a piece at a time: `--port 8001` is backed by "--port ... 8001"
        for code, plain in _SPECIFIC.findall(_without_markers(sentence))
        for piece in (code.split() if code else [plain])
    ]
    return [item for item in found if item.lower().rstrip(".,:;") not in text]


def supports(lexical: float, similarity: float) -> bool:
    """The support test: enough of the sentence's words, or close enough in meaning."""
    return lexical >= MIN_LEXICAL or similarity >= MIN_SIMILARITY


@dataclass(frozen=True)
class CitationCheck:
    number: int
    sentence: str
    lexical: float
    similarity: float
    model_says: bool | None = None  # the served model's yes/no, when it was asked
    invented: tuple[str, ...] = ()  # numbers, code, names the passage does not contain

    @property
    def supported(self) -> bool:
        if self.model_says is not None:
            return self.model_says
        return not self.invented and supports(self.lexical, self.similarity)


def content_words(text: str) -> set[str]:
    return {w for w in WORD_RE.findall(text.lower()) if w not in STOPWORDS}


def lexical_support(sentence: str, passage: str) -> float:
    return _share(content_words(sentence), content_words(passage))


def _share(words: set[str], found_in: set[str]) -> float:
    return len(words & found_in) / len(words) if words else 0.0


def _without_markers(sentence: str) -> str:
    return MARKER_RE.sub("", sentence).strip()


def _cited_numbers(sentence: str) -> list[int]:
    return [int(n) for m in MARKER_RE.finditer(sentence) for n in m.group(1).split(",")]


def cited_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, the numbers it cites) for each sentence that cites."""
    found = []
    for sentence in split_sentences(answer):
        numbers = _cited_numbers(sentence.text)
        text = _without_markers(sentence.text)
        if numbers and text:
            found.append((text, numbers))
    return found


class _Batch:
    """Distinct texts encoded in one `embedder.encode` call; rows looked up by text."""

    def __init__(self, embedder: Embedder, texts: Iterable[str]) -> None:
        self.texts = list(dict.fromkeys(texts))
        self.row = {text: i for i, text in enumerate(self.texts)}
        self.vectors = (
            np.asarray(embedder.encode(self.texts), dtype=np.float32)
            if self.texts
            else np.zeros((0, 0), dtype=np.float32)
        )

    def __getitem__(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of `texts`, one row each. They are L2-normalised, so a dot product is
        a cosine: the matrix products here stand in for `ingest.embedding.cosine`, batched."""
        return self.vectors[[self.row[t] for t in texts]]


def check_citations(
    answer: str, citations: Sequence[Citation], embedder: Embedder
) -> list[CitationCheck]:
    passages = {c.number: c.passage.text for c in citations}
    pairs = [(s, n) for s, numbers in cited_sentences(answer) for n in numbers if n in passages]
    if not pairs:
        return []
    sentences = [s for s, _ in pairs]
    cited = [passages[n] for _, n in pairs]
    batch = _Batch(embedder, sentences + cited)
    similarities = np.einsum("ij,ij->i", batch[sentences], batch[cited])
    return [
        CitationCheck(
            number,
            sentence,
            lexical_support(sentence, passages[number]),
            float(sim),
            invented=tuple(invented(sentence, passages[number])),
        )
        for (sentence, number), sim in zip(pairs, similarities, strict=True)
    ]


def _best_passages(
    sentences: Sequence[str], passages: Sequence[str], embedder: Embedder
) -> list[int | None]:
    """For each sentence, the index of the passage that supports it with the highest cosine
    similarity, or None when none passes the support test (and states all it states)."""
    if not sentences or not passages:
        return [None] * len(sentences)
    batch = _Batch(embedder, [*sentences, *passages])
    similarities = batch[sentences] @ batch[passages].T
    passage_words = [content_words(p) for p in passages]
    best: list[int | None] = []
    for sentence, row in zip(sentences, similarities, strict=True):
        words = content_words(sentence)
        passing = [
            j
            for j, found_in in enumerate(passage_words)
            if supports(_share(words, found_in), row[j]) and not invented(sentence, passages[j])
        ]
        best.append(max(passing, key=lambda j: row[j]) if passing else None)
    return best


def attribute(answer: str, passages: Sequence[Passage], embedder: Embedder) -> str:
    """Add [n] after each sentence that cites nothing and that one of the passages clearly
    supports.

    For models that do not cite by themselves (the small CPU model seldom does): the same two
    signals as the check pick, for each sentence, the passage that supports it best, and a
    marker is added only when that passage passes the check. The text is otherwise kept as is;
    the marker goes right after the sentence, never inside a token or a code block.
    """
    found = split_sentences(answer)
    uncited = [i for i, s in enumerate(found) if not _cited_numbers(s.text)]
    sentences = [_without_markers(found[i].text) for i in uncited]
    best = _best_passages(sentences, [p.text for p in passages], embedder)
    markers = {i: f"[{j + 1}]" for i, j in zip(uncited, best, strict=True) if j is not None}
    return insert_markers(answer, markers) if markers else answer


def without_unsupported(answer: str, checks: Sequence[CitationCheck]) -> str:
    """The answer without the markers whose passage does not support their sentence."""
    wrong = {(c.sentence, c.number) for c in checks if not c.supported}
    if not wrong:
        return answer
    out, position = [], 0
    for sentence in split_sentences(answer):
        text = _without_markers(sentence.text)

        def keep_supported(match: re.Match[str], text: str = text) -> str:
            numbers = [int(n) for n in match.group(1).split(",")]
            return "".join(f"[{n}]" for n in numbers if (text, n) not in wrong)

        kept = MARKER_RE.sub(keep_supported, sentence.text)
        out += [answer[position : sentence.start], re.sub(r"[ \t]+(?=[.!?]*$)", "", kept)]
        position = sentence.end
    out.append(answer[position:])
    return "".join(out)


def _is_heading(text: str, sentence: Sentence) -> bool:
    """Whether `sentence` starts a Markdown (#), setext or RST (underlined) heading."""
    line_start = text.rfind("\n", 0, sentence.start) + 1
    if _HEADING.match(text, line_start):
        return True
    line_end = text.find("\n", sentence.start)
    if line_end < 0:
        return False
    next_end = text.find("\n", line_end + 1)
    following = text[line_end + 1 : next_end if next_end >= 0 else len(text)]
    return bool(_UNDERLINE.fullmatch(following))


def evidence_sentences(text: str) -> list[Sentence]:
    """The sentences of a passage that can be evidence: all but its headings (a title is
    not a statement, and it shares the words of every question about its section)."""
    return [s for s in split_sentences(text) if not _is_heading(text, s)]


def find_evidence(
    answer: str, citations: Sequence[Citation], embedder: Embedder
) -> dict[int, list[tuple[int, int]]]:
    """Where, inside each cited passage, the sentences that support the answer are.

    For each sentence of the answer and each number it cites, when the passage as a whole
    supports the sentence (the test of `check_citations`: a flagged citation gets no
    highlight), every sentence of the passage but its headings is scored with the same two
    signals, and the best one that passes the same test is evidence, with a second one that scores
    within `EVIDENCE_MARGIN` of it (ranked by the share of
    the sentence's words it holds, rarer words in the passage counting more, plus half its
    cosine similarity). Per number: the `MAX_EVIDENCE_SPANS` best pieces of evidence, as
    (start, end) offsets into `citation.passage.text`, sorted, without duplicates, adjacent
    sentences merged into one span. Numbers without evidence are left out. The texts are
    embedded in one `encode` call.
    """
    passages = {c.number: c.passage.text for c in citations}
    pairs = [
        (text, n)
        for text, numbers in cited_sentences(answer)
        for n in dict.fromkeys(numbers)
        if n in passages
    ]
    if not pairs:
        return {}
    numbers = list(dict.fromkeys(n for _, n in pairs))
    pieces = {n: evidence_sentences(passages[n]) for n in numbers}
    batch = _Batch(
        embedder,
        [t for t, _ in pairs]
        + [passages[n] for n in numbers]
        + [s.text for n in numbers for s in pieces[n]],
    )
    words = {n: content_words(passages[n]) for n in numbers}
    pieces_words = {n: [content_words(s.text) for s in pieces[n]] for n in numbers}

    scores: dict[int, dict[int, float]] = {n: {} for n in numbers}  # number: {sentence: score}
    for text, number in pairs:
        sentence_words, vector = content_words(text), batch[[text]][0]
        passage_similarity = float(batch[[passages[number]]][0] @ vector)
        if (
            not pieces[number]
            or not supports(_share(sentence_words, words[number]), passage_similarity)
            or invented(text, passages[number])
        ):
            continue
        similarities = batch[[s.text for s in pieces[number]]] @ vector
        lexicals = [_share(sentence_words, w) for w in pieces_words[number]]
        weight = _rarity(pieces_words[number])
        passing = [
            (_weighted_share(sentence_words, found_in, weight) + SIMILARITY_WEIGHT * float(sim), i)
            for i, (lexical, sim, found_in) in enumerate(
                zip(lexicals, similarities, pieces_words[number], strict=True)
            )
            if supports(lexical, sim)
        ]
        best = max(passing, default=(0.0, -1))[0]
        for score, i in sorted(passing, reverse=True)[:MAX_EVIDENCE_SPANS]:
            if score >= best - EVIDENCE_MARGIN:  # a close second: the answer may need both
                scores[number][i] = max(score, scores[number].get(i, score))

    evidence = {}
    for number, by_sentence in scores.items():
        kept = sorted(by_sentence, key=lambda i: -by_sentence[i])[:MAX_EVIDENCE_SPANS]
        if kept:
            evidence[number] = _merged(pieces[number], sorted(kept))
    return evidence


# Ranking a passage's sentences as evidence: the words they share with the answer first (a
# person sees those), similarity second; cosine alone preferred "listens on port 8000" to the
# sentence naming the `--port` flag for "use the --port flag to change the port".
SIMILARITY_WEIGHT = 0.5
EVIDENCE_MARGIN = 0.1


def _rarity(sentences_words: Sequence[set[str]]) -> dict[str, float]:
    """Each word's weight inside one passage: words in every sentence ("server" in a page
    about the server) say less about which sentence is meant than "flag" does."""
    frequency: dict[str, int] = {}
    for words in sentences_words:
        for word in words:
            frequency[word] = frequency.get(word, 0) + 1
    total = len(sentences_words)
    return {word: math.log(1 + total / count) for word, count in frequency.items()}


def _weighted_share(words: set[str], found_in: set[str], weight: dict[str, float]) -> float:
    known = sum(weight.get(w, 0.0) for w in words)
    return sum(weight.get(w, 0.0) for w in words & found_in) / known if known else 0.0


def _merged(sentences: Sequence[Sentence], indices: Sequence[int]) -> list[tuple[int, int]]:
    """The spans of `sentences[i]` for the sorted `indices`; neighbours become one span."""
    spans: list[tuple[int, int]] = []
    previous = None
    for i in indices:
        if previous is not None and i == previous + 1:
            spans[-1] = (spans[-1][0], sentences[i].end)
        else:
            spans.append((sentences[i].start, sentences[i].end))
        previous = i
    return spans


def unsupported_sentences(
    answer: str, passages: Sequence[Passage], embedder: Embedder
) -> list[Sentence]:
    """The answer's prose sentences that no passage supports, in order.

    Prose: not a heading, and at least `MIN_PROSE_WORDS` content words once the markers are
    removed ("Yes." and short list labels are never flagged). Supported: some passage passes the
    support test for the sentence, whatever the sentence cites. With no passages at all,
    every prose sentence is unsupported. The page marks these "not found in the sources".
    """
    prose = [
        s
        for s in split_sentences(answer)
        if len(content_words(_without_markers(s.text))) >= MIN_PROSE_WORDS
        and not _is_heading(answer, s)
    ]
    best = _best_passages(
        [_without_markers(s.text) for s in prose], [p.text for p in passages], embedder
    )
    return [s for s, j in zip(prose, best, strict=True) if j is None]


def ask_model(
    checks: Sequence[CitationCheck], citations: Sequence[Citation], llm: Any
) -> list[CitationCheck]:
    """The checks with the served model's own yes/no added (one short request each)."""
    passages = {c.number: c.passage.text for c in citations}
    asked = []
    for check in checks:
        prompt = render("support", passage=passages[check.number], sentence=check.sentence)
        reply = llm.invoke([HumanMessage(prompt)], temperature=0, max_tokens=2)
        says = str(reply.content).strip().lower().startswith("yes")
        asked.append(replace(check, model_says=says))
    return asked
