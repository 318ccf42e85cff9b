"""`quarry eval answers`: the whole chat chain on each question of a labelled set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.messages import HumanMessage

from quarry.app.chain import Answer, ChatChain
from quarry.app.prompts import render
from quarry.eval.metrics import citation_precision, echoes_prompt, fact_recall, mean, percentile
from quarry.eval.qa import QaItem


@dataclass
class AnswerResult:
    id: str
    answerable: bool
    answer: str
    cited_sources: list[str]
    refused: bool
    refusal_correct: bool
    citation_precision: float | None
    fact_recall: float | None
    ttft_s: float | None
    seconds: float
    faithful: bool | None = None
    citations_checked: int = 0
    citations_unsupported: int = 0
    echoed_prompt: bool = False
    model_citations_removed: int = 0  # written by the model, not supported: taken off


@dataclass
class AnswersReport:
    results: list[AnswerResult] = field(default_factory=list)

    def summary(self) -> dict[str, float | None]:
        ttfts = [r.ttft_s for r in self.results if r.ttft_s is not None]
        totals = [r.seconds for r in self.results]
        judged = [float(r.faithful) for r in self.results if r.faithful is not None]
        checked = sum(r.citations_checked for r in self.results)
        unsupported = sum(r.citations_unsupported for r in self.results)
        return {
            "prompt_echoes": float(sum(r.echoed_prompt for r in self.results)),
            "citation_precision": mean([r.citation_precision for r in self.results]),
            "fact_recall": mean([r.fact_recall for r in self.results]),
            "refusal_accuracy": mean([float(r.refusal_correct) for r in self.results]),
            "answered_with_citations": mean(
                [float(bool(r.cited_sources)) for r in self.results if r.answerable]
            ),
            "faithfulness": mean(judged) if judged else None,
            "citations_checked": float(checked),
            "citations_unsupported": float(unsupported),
            "citation_support_rate": (checked - unsupported) / checked if checked else None,
            "model_citations_removed": float(sum(r.model_citations_removed for r in self.results)),
            "ttft_p50_s": percentile(ttfts, 50),
            "ttft_p95_s": percentile(ttfts, 95),
            "total_p50_s": percentile(totals, 50),
            "total_p95_s": percentile(totals, 95),
        }


def final_answer(chain: ChatChain, question: str) -> Answer:
    *_, answer = chain.stream(question)
    assert isinstance(answer, Answer)
    return answer


def judge(chain: ChatChain, answer: Answer) -> bool | None:
    """Ask the served model whether the passages support the answer (None when not asked)."""
    if answer.refused or not answer.passages:
        return None
    prompt = render("judge", passages=[p.text for p in answer.passages], answer=answer.text)
    reply = chain.llm.invoke([HumanMessage(prompt)], temperature=0, max_tokens=3)
    return str(reply.content).strip().lower().startswith("yes")


def evaluate(chain: ChatChain, items: Sequence[QaItem], *, with_judge: bool) -> AnswersReport:
    report = AnswersReport()
    for item in items:
        answer = final_answer(chain, item.question)
        cited = [c.passage.source for c in answer.citations]
        report.results.append(
            AnswerResult(
                id=item.id,
                answerable=item.answerable,
                answer=answer.text,
                cited_sources=cited,
                refused=answer.refused,
                refusal_correct=answer.refused != item.answerable,
                citation_precision=citation_precision(cited, item.expected_sources)
                if item.answerable
                else None,
                fact_recall=fact_recall(answer.text, item.facts) if item.answerable else None,
                ttft_s=answer.ttft_s,
                seconds=answer.seconds,
                faithful=judge(chain, answer) if with_judge else None,
                citations_checked=len(answer.citation_checks),
                citations_unsupported=len(answer.unsupported_citations),
                echoed_prompt=echoes_prompt(answer.text, chain.system_prompt),
                model_citations_removed=answer.removed_citations,
            )
        )
    return report


def markdown(report: AnswersReport, title: str) -> str:
    lines = [f"# {title}", "", "| metric | value |", "|---|---:|"]
    for name, value in report.summary().items():
        lines.append(f"| {name} | {'-' if value is None else f'{value:.3f}'} |")
    lines += [
        "",
        "| id | refused | refusal ok | citation precision | fact recall | TTFT s | answer |",
    ]
    lines.append("|---|---|---|---:|---:|---:|---|")
    for r in report.results:
        text = r.answer.replace("\n", " ").replace("|", "\\|")[:160]
        lines.append(
            f"| {r.id} | {r.refused} | {r.refusal_correct} | {_fmt(r.citation_precision)} "
            f"| {_fmt(r.fact_recall)} | {_fmt(r.ttft_s)} | {text} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
