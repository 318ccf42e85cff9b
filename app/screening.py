"""A fast offline screen for instructions aimed at the model (prompt injection).

Run on the user's message (a direct attempt, "JAILBREAK") and on every retrieved passage (an
indirect one planted in a document, "INJECTION"). It is a scored set of patterns: phrases that
try to override the model's instructions, change its role, extract its prompt, or smuggle in
chat-template markup. Text that talks *about* such phrases (documentation on prompts, a quoted
example) is discounted, because a RAG corpus about LLMs is full of it. Its precision and recall
on a labelled set are reported by `quarry eval injection`.

`screen_batch` is what the chat calls: the offline screen, and when one is configured a
classifier served by vLLM (app/injection_classifier.py) on the same texts in one request; a
text is flagged when either flags it. When the classifier cannot screen, the offline screen
stands alone and the result says so and why (`BatchScreen.fallback`), every time: the chat
notes it on each answer so screened. Nothing here remembers a user or a past call, because
one chain (and its classifier) serves every browser session; the cached `screen` returns
immutable values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from quarry.app.injection_classifier import InjectionClassifier

log = logging.getLogger(__name__)

Label = Literal["BENIGN", "JAILBREAK", "INJECTION"]

# (weight, pattern): weights add up; THRESHOLD decides.
PATTERNS: list[tuple[float, re.Pattern[str]]] = [
    (
        1.0,
        re.compile(
            r"\b(ignore|disregard|forget|override|skip|drop)\b[^.\n]{0,40}\b(previous|prior|above|"
            r"earlier|preceding|all|any|your|the|system|original|other)\b[^.\n]{0,30}\b(instructions?|"
            r"prompts?|rules|directions|guidelines|context|messages?|constraints|passages|"
            r"documents|sources|user'?s? question)\b",
            re.I,
        ),
    ),
    (
        0.8,
        re.compile(
            r"\b(your|the) (new|real|actual|only) (task|job|instructions?|role|goal) "
            r"(is|are|now)\b",
            re.I,
        ),
    ),
    (
        1.0,
        re.compile(
            r"\b(you are|you're|act as|pretend (to be|you are)|roleplay as|from now on,? "
            r"you)\b[^.\n]{0,40}\b(DAN|unrestricted|jailbroken|no (rules|limits|"
            r"restrictions|filters)|evil|developer mode)\b",
            re.I,
        ),
    ),
    (
        1.0,
        re.compile(
            r"\b(reveal|print|show|repeat|output|leak|tell me)\b[^.\n]{0,30}\b(your|the)"
            r"\b[^.\n]{0,20}\b(system prompt|initial prompt|hidden (prompt|instructions)|"
            r"instructions above|original instructions)\b",
            re.I,
        ),
    ),
    (
        0.8,
        re.compile(
            r"\b(new|updated|real|actual|secret) (instructions?|task|system prompt)\s*:", re.I
        ),
    ),
    (
        0.8,
        re.compile(
            r"(<\|im_start\|>|<\|start_header_id\|>|<\|system\|>|\[INST\]|<<SYS>>|"
            r"^\s*(system|assistant)\s*:)",
            re.I | re.M,
        ),
    ),
    (
        0.7,
        re.compile(
            r"\b(do anything now|jailbreak mode|developer mode (enabled|on)|without any "
            r"(restrictions|filters|censorship)|bypass (your|the|all) (safety|filters?|"
            r"guidelines|rules))\b",
            re.I,
        ),
    ),
    (
        0.5,
        re.compile(
            r"\b(AI|assistant|language model|chatbot|LLM)s?\b[^.\n]{0,40}\b(must|should|"
            r"will now|has to|is required to)\b[^.\n]{0,40}\b(respond|reply|answer|say|"
            r"output|include|recommend|tell)\b",
            re.I,
        ),
    ),
    (
        0.6,
        re.compile(
            r"\b(instead|rather),? (respond|reply|answer|say|write|output)\b[^.\n]{0,40}"
            r"\b(only|exactly|with)\b",
            re.I,
        ),
    ),
    (
        0.5,
        re.compile(
            r"\b(when (summari[sz]ing|answering|asked)|if you are an? (AI|assistant|"
            r"language model))\b",
            re.I,
        ),
    ),
    (
        0.4,
        re.compile(
            r"\b(send|post|forward|exfiltrate|upload)\b[^.\n]{0,40}\b(conversation|"
            r"chat history|password|api key|credentials|user data)\b[^.\n]{0,40}\b(to|"
            r"at)\b",
            re.I,
        ),
    ),
]

# Signs that the text discusses injections rather than performing one.
DISCUSSION = re.compile(
    r"\b(prompt injection|injection attacks?|jailbreak(s|ing)? (attempts?|attacks?|prompts?)|"
    r"attackers?|adversar(y|ial)|for example|e\.g\.|such as|phrases? like|a classic|"
    r"is an example of|detect(s|ed|ion|or)?|classif(y|ier|ied)|red[- ]team)\b",
    re.I,
)
QUOTED = re.compile(r"[\"“'`][^\"”'`\n]{8,200}[\"”'`]")
THRESHOLD = 0.6
DISCUSSION_DISCOUNT = 0.5


@dataclass(frozen=True)
class Screen:
    """One text's verdict; immutable, since `screen` hands the same one to every caller."""

    label: Label
    score: float
    reasons: tuple[str, ...] = ()
    classifier_probability: float | None = None  # when a classifier screened the text too

    @property
    def flagged(self) -> bool:
        return self.label != "BENIGN"


def injection_score(text: str) -> tuple[float, tuple[str, ...]]:
    """Sum of matched pattern weights, discounted where the matches sit in quotes or in a
    text that discusses injections."""
    score, reasons = 0.0, []
    quoted_spans = [m.span() for m in QUOTED.finditer(text)]
    discusses = bool(DISCUSSION.search(text))
    for weight, pattern in PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        inside_quotes = any(a <= match.start() and match.end() <= b for a, b in quoted_spans)
        factor = DISCUSSION_DISCOUNT if (inside_quotes or discusses) else 1.0
        score += weight * factor
        reasons.append(match.group(0).strip()[:80])
    return score, tuple(reasons)


@lru_cache(maxsize=4096)  # a passage is screened for its prompt and for the page alike
def screen(text: str, *, source: Literal["user", "passage"]) -> Screen:
    score, reasons = injection_score(text)
    if score < THRESHOLD:
        return Screen("BENIGN", score, reasons)
    return Screen(_flagged_label(source), score, reasons)


@dataclass(frozen=True)
class BatchScreen:
    """The screens of one turn: the user's message and each passage, in order, and whether
    the classifier took part (`fallback`: why a configured one did not)."""

    question: Screen
    passages: tuple[Screen, ...]
    classifier_used: bool = False
    fallback: str = ""

    @property
    def warning(self) -> str:
        """What the answer should say when the classifier was configured but not used."""
        return f"{self.fallback} Screening with the offline patterns only." if self.fallback else ""


def screen_batch(
    question: str, passages: Sequence[str], classifier: InjectionClassifier | None = None
) -> BatchScreen:
    """Screen the message and every passage; with a classifier, in one request to it."""
    offline = (screen(question, source="user"), *(screen(p, source="passage") for p in passages))
    if classifier is None:
        return BatchScreen(offline[0], offline[1:])
    from quarry.app.injection_classifier import ClassifierError

    try:
        probabilities = classifier.probabilities([question, *passages])
    except ClassifierError as exc:
        log.warning("Injection classifier not used: %s", exc)
        return BatchScreen(offline[0], offline[1:], fallback=str(exc))
    sources: list[Literal["user", "passage"]] = ["user"]
    sources += ["passage"] * len(passages)
    combined = [
        combine(s, p, classifier.flags(p), source)
        for s, p, source in zip(offline, probabilities, sources, strict=True)
    ]
    return BatchScreen(combined[0], tuple(combined[1:]), classifier_used=True)


def combine(
    offline: Screen, probability: float, classifier_flags: bool, source: Literal["user", "passage"]
) -> Screen:
    """Flagged when the offline screen or the classifier flags; the reasons say which."""
    if not classifier_flags:
        return replace(offline, classifier_probability=probability)
    label: Label = offline.label if offline.flagged else _flagged_label(source)
    reasons = (*offline.reasons, f"classifier {probability:.2f}")
    return Screen(label, offline.score, reasons, classifier_probability=probability)


def _flagged_label(source: Literal["user", "passage"]) -> Label:
    return "JAILBREAK" if source == "user" else "INJECTION"
