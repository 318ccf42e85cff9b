"""`quarry eval injection`: precision and recall of the prompt-injection screen.

The labelled set is JSONL: {"text": ..., "label": "injection" | "benign", "kind": ...}, where
kind is `direct` (typed by a user), `indirect` (planted in a document), `lookalike` (benign
text about prompts and instructions), `obfuscated`, `multilingual` or `plain`. The screen's
learned half trains on the sets in `app/learned_screen.py` TRAINING_SETS; of the two written
apart from it, `injection-heldout-2.jsonl` chose its threshold and `injection-heldout-3.jsonl`
was never used to tune it.

With a classifier (app/injection_classifier.py), the classifier alone and the classifier
combined with the offline screen (what the chat uses) are reported beside the offline screen.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from quarry.app.injection_classifier import InjectionClassifier
from quarry.app.screening import combine, screen
from quarry.eval.qa import QaSetError

SHIPPED_SET = Path(__file__).resolve().parent / "qa" / "injection.jsonl"
HELDOUT_SET = SHIPPED_SET.with_name("injection-heldout.jsonl")
BATCH = 64  # texts per /classify request
OFFLINE, CLASSIFIER, COMBINED = "offline", "classifier", "offline + classifier"


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted: bool, actual: bool) -> None:
        if predicted and actual:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif actual:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


def load_labelled(path: Path) -> list[dict[str, str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QaSetError(f"{path}:{number}: not valid JSON ({exc.msg}).") from None
        if row.get("label") not in ("injection", "benign") or not row.get("text"):
            raise QaSetError(f"{path}:{number}: needs text and a label of injection or benign.")
        rows.append(row)
    return rows


def _source(row: dict[str, str]) -> Literal["user", "passage"]:
    return "user" if row.get("kind") == "direct" else "passage"


def evaluate(
    rows: list[dict[str, str]],
    flags: Sequence[bool] | None = None,
    probabilities: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Precision, recall and misses of `flags` (default: the offline screen's)."""
    if flags is None:
        flags = [screen(row["text"], source=_source(row)).flagged for row in rows]
    overall = Counts()
    by_kind: defaultdict[str, Counts] = defaultdict(Counts)
    misses = []
    for number, (row, flagged) in enumerate(zip(rows, flags, strict=True)):
        actual = row["label"] == "injection"
        overall.add(flagged, actual)
        by_kind[row.get("kind", "")].add(flagged, actual)
        if flagged != actual:
            miss: dict[str, Any] = {
                "text": row["text"],
                "label": row["label"],
                "flagged": flagged,
            }
            if probabilities is not None:
                miss["probability"] = round(probabilities[number], 4)
            misses.append(miss)
    return {
        "examples": len(rows),
        "precision": overall.precision,
        "recall": overall.recall,
        "counts": vars(overall),
        "by_kind": {kind: vars(c) for kind, c in sorted(by_kind.items())},
        "misses": misses,
    }


def compare(rows: list[dict[str, str]], classifier: InjectionClassifier) -> dict[str, Any]:
    """The offline screen's result, with the classifier's and the combination's under
    `screens`. Raises ClassifierError when the classifier cannot screen."""
    texts = [row["text"] for row in rows]
    probabilities: list[float] = []
    for start in range(0, len(texts), BATCH):
        probabilities += classifier.probabilities(texts[start : start + BATCH])
    by_classifier = [classifier.flags(p) for p in probabilities]
    combined = [
        combine(screen(row["text"], source=_source(row)), p, flagged, _source(row)).flagged
        for row, p, flagged in zip(rows, probabilities, by_classifier, strict=True)
    ]
    result = evaluate(rows)
    result["classifier"] = {
        "url": classifier.url,
        "model": classifier.served_model(),
        "threshold": classifier.threshold,
        "injection_labels": list(classifier.injection_labels),
    }
    result["screens"] = {
        CLASSIFIER: evaluate(rows, by_classifier, probabilities),
        COMBINED: evaluate(rows, combined, probabilities),
    }
    return result


def gated(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The screen thresholds apply to: the one the chat uses."""
    screens = result.get("screens")
    if isinstance(screens, dict):
        return COMBINED, screens[COMBINED]
    return OFFLINE, result


def _fraction(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown(result: dict[str, Any]) -> str:
    if "screens" in result:
        return _markdown_compared(result)
    lines = [
        "# Prompt-injection screen",
        "",
        f"{result['examples']} examples: precision {result['precision']:.3f}, "
        f"recall {result['recall']:.3f}.",
        "",
        "| kind | flagged correctly | missed | false alarms | passed correctly |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, c in result["by_kind"].items():
        lines.append(f"| {kind} | {c['tp']} | {c['fn']} | {c['fp']} | {c['tn']} |")
    lines += ["", "Misclassified:", ""]
    lines += [f"- ({m['label']}) {m['text']}" for m in result["misses"]]
    return "\n".join(lines) + "\n"


def _markdown_compared(result: dict[str, Any]) -> str:
    screens: dict[str, dict[str, Any]] = {OFFLINE: result, **result["screens"]}
    info: dict[str, Any] = result["classifier"]
    lines = [
        "# Prompt-injection screen",
        "",
        f"{result['examples']} examples. Classifier: {info['model']} at {info['url']}, "
        f"threshold {info['threshold']}, injection labels {', '.join(info['injection_labels'])}.",
        "",
        "| screen | precision | recall | flagged correctly | missed | false alarms | "
        "passed correctly |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in screens.items():
        c: dict[str, int] = r["counts"]
        lines.append(
            f"| {name} | {_fraction(r['precision'])} | {_fraction(r['recall'])} | {c['tp']} | "
            f"{c['fn']} | {c['fp']} | {c['tn']} |"
        )
    lines += [
        "",
        "Missed / false alarms by kind:",
        "",
        "| kind | " + " | ".join(screens) + " |",
        "|---|" + "---:|" * len(screens),
    ]
    for kind in result["by_kind"]:
        cells = [
            f"{r['by_kind'][kind]['fn']} / {r['by_kind'][kind]['fp']}" for r in screens.values()
        ]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    for name, r in screens.items():
        lines += ["", f"Misclassified by {name}:", ""]
        for m in r["misses"]:
            p = f" p={m['probability']:.2f}" if "probability" in m else ""
            lines.append(f"- ({m['label']}{p}) {m['text']}")
    return "\n".join(lines) + "\n"
