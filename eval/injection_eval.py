"""`quarry eval injection`: precision and recall of the prompt-injection screen.

The labelled set is JSONL: {"text": ..., "label": "injection" | "benign", "kind": ...}, where
kind is `direct` (typed by a user), `indirect` (planted in a document), `lookalike` (benign
text about prompts and instructions) or `plain`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from app.screening import screen
from eval.qa import QaSetError

SHIPPED_SET = Path(__file__).resolve().parent / "qa" / "injection.jsonl"


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


def evaluate(rows: list[dict[str, str]]) -> dict[str, object]:
    overall = Counts()
    by_kind: defaultdict[str, Counts] = defaultdict(Counts)
    misses = []
    for row in rows:
        source = "user" if row.get("kind") == "direct" else "passage"
        flagged = screen(row["text"], source=source).flagged
        actual = row["label"] == "injection"
        overall.add(flagged, actual)
        by_kind[row.get("kind", "")].add(flagged, actual)
        if flagged != actual:
            misses.append({"text": row["text"], "label": row["label"], "flagged": flagged})
    return {
        "examples": len(rows),
        "precision": overall.precision,
        "recall": overall.recall,
        "counts": vars(overall),
        "by_kind": {kind: vars(c) for kind, c in sorted(by_kind.items())},
        "misses": misses,
    }


def markdown(result: dict[str, object]) -> str:
    lines = [
        "# Prompt-injection screen",
        "",
        f"{result['examples']} examples: precision {result['precision']:.3f}, "
        f"recall {result['recall']:.3f}.",
        "",
        "| kind | flagged correctly | missed | false alarms | passed correctly |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, c in result["by_kind"].items():  # type: ignore[attr-defined]
        lines.append(f"| {kind} | {c['tp']} | {c['fn']} | {c['fp']} | {c['tn']} |")
    lines += ["", "Misclassified:", ""]
    lines += [f"- ({m['label']}) {m['text']}" for m in result["misses"]]  # type: ignore[attr-defined]
    return "\n".join(lines) + "\n"
