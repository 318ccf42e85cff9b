"""The learned half of the offline injection screen: n-grams and logistic regression.

The patterns in app/screening.py catch the phrasings they were written for; attacks that
avoid the usual words (role-play, "the rules were a test", a polite "repeat what came
before") get past them. This model reads the same normalised and decoded forms of a text
(app/normalise.py) as character 2-5-grams within words, which carry across languages,
look-alike letters and spelling, and as words and word pairs, and scores it with a logistic
regression trained on the labelled examples in eval/qa (attacks of every kind beside benign
text that talks about prompts, rules and instructions).

It trains from those files at first use, in about a second, and is never saved: what the
screen knows is the examples, which anyone can read and extend. `warm` trains it before a
first question needs it. Its figures, on sets it never saw, are in docs/decisions.md.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

EXAMPLES = Path(__file__).resolve().parent.parent / "eval" / "qa"
# What it learns from; the held-out sets (injection-heldout-2 and -3) are never read here.
TRAINING_SETS = (
    "injection-train.jsonl",
    "injection-train-2.jsonl",
    "injection-train-3.jsonl",  # short follow-ups, technical passages, short attacks
    "injection-train-peps.jsonl",  # passages of PEPs outside peps-subset.txt, all benign
    "injection.jsonl",
    "injection-heldout.jsonl",
)
# Probability above which a text is flagged: chosen on injection-heldout-2.jsonl, where 0.5
# flagged more look-alikes and 0.7 missed more attacks.
THRESHOLD = 0.6

_lock = threading.Lock()
_model: Pipeline | None = None


def injection_probability(forms: Sequence[str]) -> float:
    """The probability that a text (its normalised and decoded forms) is an injection."""
    return float(_trained().predict_proba([_joined(forms)])[0, 1])


def warm() -> None:
    """Train now, off the path of the first question."""
    _trained()


def _joined(forms: Sequence[str]) -> str:
    return "\n".join(forms)


def _trained() -> Pipeline:
    global _model
    with _lock:
        if _model is None:
            _model = _train()
        return _model


def _train() -> Pipeline:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    from quarry.app.normalise import variants

    texts, labels = [], []
    for name in TRAINING_SETS:
        for line in (EXAMPLES / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts.append(_joined([form for _, form in variants(row["text"])]))
            labels.append(row["label"] == "injection")
    features = make_union(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
    )
    classifier = LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced")
    return make_pipeline(features, classifier).fit(texts, labels)
