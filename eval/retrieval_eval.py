"""`quarry eval retrieval`: does the right document come back, how fast, and when to abstain?

Several retrieval configurations (hybrid weight, reranker, k, ...) run over the same question
set in one process, so their numbers sit side by side on the same machine state. The
abstention table sweeps the "not in your documents" threshold over the best cosine similarity
each question reached, which is what `retrieval.min_score` is compared with.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from quarry.app.retrieval import Retriever
from quarry.eval.metrics import hit_at_k, mean, ndcg_at_k, percentile, reciprocal_rank
from quarry.eval.qa import QaItem

HIT_RANKS = (1, 3, 5, 10)


@dataclass
class QuestionResult:
    id: str
    answerable: bool
    retrieved: list[str]
    hits: dict[int, float]  # rank -> 1.0 when an expected source is within it
    mrr_at_10: float | None
    ndcg_at_10: float | None
    best_score: float  # cosine similarity of the closest chunk
    abstained: bool  # nothing cleared the relevance floor
    timings_ms: list[float]


@dataclass
class ConfigResult:
    name: str
    k: int
    questions: list[QuestionResult] = field(default_factory=list)

    def summary(self) -> dict[str, float | None]:
        answerable = [q for q in self.questions if q.answerable]
        unanswerable = [q for q in self.questions if not q.answerable]
        latencies = [t for q in self.questions for t in q.timings_ms]
        return {
            **{f"hit_at_{r}": mean([q.hits[r] for q in answerable]) for r in HIT_RANKS},
            "mrr_at_10": mean([q.mrr_at_10 for q in answerable]),
            "ndcg_at_10": mean([q.ndcg_at_10 for q in answerable]),
            "abstained_when_unanswerable": mean([float(q.abstained) for q in unanswerable]),
            "abstained_when_answerable": mean([float(q.abstained) for q in answerable]),
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p95_ms": percentile(latencies, 95),
        }


def evaluate(
    retriever: Retriever, items: Sequence[QaItem], k: int, name: str = "", repeat: int = 1
) -> ConfigResult:
    """Search each question `repeat` times (more latency samples); ranks from the last."""
    result = ConfigResult(name=name or f"k={k}", k=k)
    retriever.search("warm-up", 1)  # load models and indexes outside the timings
    for item in items:
        timings = []
        for _ in range(max(1, repeat)):
            started = time.perf_counter()
            passages = retriever.search(item.question, k)
            timings.append((time.perf_counter() - started) * 1000)
        sources = [p.source for p in passages]
        expected = item.expected_sources
        scored = item.answerable
        result.questions.append(
            QuestionResult(
                id=item.id,
                answerable=item.answerable,
                retrieved=sources,
                hits={r: hit_at_k(sources, expected, r) for r in HIT_RANKS} if scored else {},
                mrr_at_10=reciprocal_rank(sources, expected, 10) if scored else None,
                ndcg_at_10=ndcg_at_k(sources, expected, 10) if scored else None,
                best_score=retriever.best_score(item.question),
                abstained=not passages,
                timings_ms=timings,
            )
        )
    return result


@dataclass(frozen=True)
class Threshold:
    value: float
    abstain_precision: float | None  # of the questions refused, the share truly unanswerable
    abstain_recall: float | None  # of the unanswerable questions, the share refused
    answered: float | None  # of the answerable questions, the share still answered
    accuracy: float  # right decision (answer or refuse) over all questions


def abstention_table(
    questions: Sequence[QuestionResult], low: float = 0.10, high: float = 0.60, step: float = 0.025
) -> list[Threshold]:
    """The answer/refuse decision at each threshold over the questions' best scores."""
    rows = []
    steps = round((high - low) / step)
    for i in range(steps + 1):
        value = round(low + i * step, 4)
        refused = [q for q in questions if q.best_score < value]
        unanswerable = [q for q in questions if not q.answerable]
        answerable = [q for q in questions if q.answerable]
        right_refusals = sum(not q.answerable for q in refused)
        right_answers = sum(q.best_score >= value for q in answerable)
        rows.append(
            Threshold(
                value=value,
                abstain_precision=right_refusals / len(refused) if refused else None,
                abstain_recall=right_refusals / len(unanswerable) if unanswerable else None,
                answered=right_answers / len(answerable) if answerable else None,
                accuracy=(right_refusals + right_answers) / len(questions),
            )
        )
    return rows


def best_threshold(rows: Sequence[Threshold]) -> Threshold:
    """Most right decisions; among ties, the lowest threshold (refusing costs users more)."""
    return max(rows, key=lambda r: (r.accuracy, -r.value))


def markdown(results: Sequence[ConfigResult], title: str) -> str:
    metrics = list(results[0].summary())
    lines = [f"# {title}", "", "| metric | " + " | ".join(r.name for r in results) + " |"]
    lines.append("|---|" + "---:|" * len(results))
    for metric in metrics:
        cells = [_fmt(r.summary().get(metric), metric) for r in results]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    first = results[0]
    rows = abstention_table(first.questions)
    chosen = best_threshold(rows)
    lines += [
        "",
        "Abstention: refuse when the best cosine similarity is below the threshold",
        f"(most right decisions at {chosen.value:.3f}).",
        "",
        "| threshold | refusals right (precision) | unanswerable refused (recall) "
        "| answerable answered | right decisions |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.value:.3f} | {_fmt(row.abstain_precision, '')} "
            f"| {_fmt(row.abstain_recall, '')} | {_fmt(row.answered, '')} "
            f"| {row.accuracy:.3f} |"
        )
    lines += ["", f"Per question ({first.name}):", "", "| id | best | hit@1 | hit@5 | retrieved |"]
    lines.append("|---|---:|---:|---:|---|")
    for q in first.questions:
        retrieved = ", ".join(dict.fromkeys(q.retrieved)) or "(nothing above the floor)"
        lines.append(
            f"| {q.id} | {q.best_score:.3f} | {_fmt(q.hits.get(1), '')} "
            f"| {_fmt(q.hits.get(5), '')} | {retrieved} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if metric.endswith("_ms") else f"{value:.3f}"
