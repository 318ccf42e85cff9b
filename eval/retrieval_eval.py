"""`quarry eval retrieval`: does the right document come back, and how fast?"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.retrieval import Retriever
from eval.metrics import hit_at_k, mean, ndcg_at_k, percentile, reciprocal_rank
from eval.qa import QaItem


@dataclass
class QuestionResult:
    id: str
    answerable: bool
    retrieved: list[str]
    hit_at_1: float | None
    hit_at_5: float | None
    mrr_at_10: float | None
    ndcg_at_10: float | None
    abstained: bool  # nothing cleared the relevance floor
    seconds: float


@dataclass
class ConfigResult:
    name: str
    k: int
    questions: list[QuestionResult] = field(default_factory=list)

    def summary(self) -> dict[str, float | None]:
        answerable = [q for q in self.questions if q.answerable]
        unanswerable = [q for q in self.questions if not q.answerable]
        latencies = [q.seconds * 1000 for q in self.questions]
        return {
            "hit_at_1": mean([q.hit_at_1 for q in answerable]),
            "hit_at_5": mean([q.hit_at_5 for q in answerable]),
            "mrr_at_10": mean([q.mrr_at_10 for q in answerable]),
            "ndcg_at_10": mean([q.ndcg_at_10 for q in answerable]),
            "abstained_when_unanswerable": mean([float(q.abstained) for q in unanswerable]),
            "abstained_when_answerable": mean([float(q.abstained) for q in answerable]),
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p95_ms": percentile(latencies, 95),
        }


def evaluate(retriever: Retriever, items: Sequence[QaItem], k: int) -> ConfigResult:
    result = ConfigResult(name=f"k={k}", k=k)
    retriever.search("warm-up", 1)  # load the embedding model outside the timings
    for item in items:
        started = time.perf_counter()
        passages = retriever.search(item.question, k)
        seconds = time.perf_counter() - started
        sources = [p.source for p in passages]
        expected = item.expected_sources
        scored = item.answerable
        result.questions.append(
            QuestionResult(
                id=item.id,
                answerable=item.answerable,
                retrieved=sources,
                hit_at_1=hit_at_k(sources, expected, 1) if scored else None,
                hit_at_5=hit_at_k(sources, expected, 5) if scored else None,
                mrr_at_10=reciprocal_rank(sources, expected, 10) if scored else None,
                ndcg_at_10=ndcg_at_k(sources, expected, 10) if scored else None,
                abstained=not passages,
                seconds=seconds,
            )
        )
    return result


def markdown(results: Sequence[ConfigResult], title: str) -> str:
    metrics = list(results[0].summary())
    lines = [f"# {title}", "", "| metric | " + " | ".join(r.name for r in results) + " |"]
    lines.append("|---|" + "---:|" * len(results))
    for metric in metrics:
        cells = [_fmt(r.summary()[metric], metric) for r in results]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    first = results[0]
    lines += ["", f"Per question ({first.name}):", "", "| id | hit@1 | hit@5 | RR | retrieved |"]
    lines.append("|---|---:|---:|---:|---|")
    for q in first.questions:
        retrieved = ", ".join(dict.fromkeys(q.retrieved)) or "(nothing above the floor)"
        lines.append(
            f"| {q.id} | {_fmt(q.hit_at_1, '')} | {_fmt(q.hit_at_5, '')} "
            f"| {_fmt(q.mrr_at_10, '')} | {retrieved} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if metric.endswith("_ms") else f"{value:.3f}"
