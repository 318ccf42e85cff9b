"""Does each cited passage support the sentence that cites it?

Two cheap signals, computed after the answer is complete: the share of the sentence's
content words found in the passage (lexical), and the cosine similarity of their embeddings
(with the collection's own model). A citation is supported when either is high enough; the
rest are flagged in the page and counted by `quarry eval answers`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from langchain_core.messages import HumanMessage

from app.citations import MARKER_RE, Citation
from app.prompts import render
from app.retrieval import Passage
from ingest.embedding import Embedder

SENTENCE_RE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)(?:\s*\[[\d,\s]+\])*", re.M)
WORD_RE = re.compile(r"[a-z0-9][a-z0-9_\-]{2,}")
STOPWORDS = frozenset(
    """the and for are but not you your with that this from they have has can will what when
    which how use uses used into its their them then than there here also only more most
    such been was were does did done all any each other some very just about""".split()  # noqa: SIM905
)
MIN_LEXICAL = 0.5
MIN_SIMILARITY = 0.45


@dataclass(frozen=True)
class CitationCheck:
    number: int
    sentence: str
    lexical: float
    similarity: float
    model_says: bool | None = None  # the served model's yes/no, when it was asked

    @property
    def supported(self) -> bool:
        if self.model_says is not None:
            return self.model_says
        return self.lexical >= MIN_LEXICAL or self.similarity >= MIN_SIMILARITY


def content_words(text: str) -> set[str]:
    return {w for w in WORD_RE.findall(text.lower()) if w not in STOPWORDS}


def lexical_support(sentence: str, passage: str) -> float:
    words = content_words(sentence)
    return len(words & content_words(passage)) / len(words) if words else 0.0


def cited_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, the numbers it cites) for each sentence that cites."""
    found = []
    for match in SENTENCE_RE.finditer(answer):
        sentence = match.group(0)
        numbers = [int(n) for m in MARKER_RE.finditer(sentence) for n in m.group(1).split(",")]
        text = MARKER_RE.sub("", sentence).strip()
        if numbers and text:
            found.append((text, numbers))
    return found


def check_citations(
    answer: str, citations: Sequence[Citation], embedder: Embedder
) -> list[CitationCheck]:
    passages = {c.number: c.passage.text for c in citations}
    pairs = [(s, n) for s, numbers in cited_sentences(answer) for n in numbers if n in passages]
    if not pairs:
        return []
    vectors = embedder.encode([s for s, _ in pairs] + [passages[n] for _, n in pairs])
    half = len(pairs)
    checks = []
    for i, (sentence, number) in enumerate(pairs):
        a, b = vectors[i], vectors[half + i]
        similarity = sum(x * y for x, y in zip(a, b, strict=True))  # both are normalized
        checks.append(
            CitationCheck(number, sentence, lexical_support(sentence, passages[number]), similarity)
        )
    return checks


def attribute(answer: str, passages: Sequence[Passage], embedder: Embedder) -> str:
    """Add [n] after each sentence that one of the passages clearly supports.

    For models that do not cite by themselves (the small CPU model seldom does): the same two
    signals as the check pick, for each sentence, the passage that supports it best, and a
    marker is added only when that passage passes the check. The text is otherwise kept as is.
    """
    spans = [m.span() for m in SENTENCE_RE.finditer(answer) if m.group(0).strip()]
    if not spans or not passages:
        return answer
    sentences = [answer[a:b].strip() for a, b in spans]
    vectors = embedder.encode(sentences + [p.text for p in passages])
    passage_vectors = vectors[len(sentences) :]
    out, position = [], 0
    for (start, end), sentence, vector in zip(spans, sentences, vectors, strict=False):
        best: CitationCheck | None = None
        for number, (passage, other) in enumerate(zip(passages, passage_vectors, strict=True), 1):
            similarity = sum(x * y for x, y in zip(vector, other, strict=True))
            check = CitationCheck(
                number, sentence, lexical_support(sentence, passage.text), similarity
            )
            if check.supported and (best is None or check.similarity > best.similarity):
                best = check
        end_of_text = start + len(answer[start:end].rstrip())
        out.append(answer[position:end_of_text])
        if best is not None:
            out.append(f" [{best.number}]")
        position = end_of_text
    out.append(answer[position:])
    return "".join(out)


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
