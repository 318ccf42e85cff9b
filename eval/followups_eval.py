"""`quarry eval followups`: does retrieval find the right document for a follow-up question?

Every turn after the first is searched three ways, at the same k:

- `followup`: what the chat does, `search_queries` over the conversation's earlier questions
  and `Retriever.search_many`, the rankings fused;
- `alone`: the follow-up question by itself ("and the chat page?"), the floor;
- `standalone`: the hand-written question that reads without the conversation, the ceiling
  a perfect rewrite would reach.

The gap between `standalone` and `followup` is what conversation handling still loses. First
turns have nothing before them, so the three ways are one search; they are reported apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from quarry.app.chain import Turn, search_queries
from quarry.app.retrieval import Retriever
from quarry.eval.metrics import first_relevant_rank, hit_at_k, mean, reciprocal_rank
from quarry.eval.qa import Conversation, FollowupTurn

STRATEGIES = ("followup", "alone", "standalone")


@dataclass
class TurnResult:
    conversation: str
    turn: int  # 1 is the conversation's first question
    question: str
    standalone: str
    expected: list[str]
    retrieved: dict[str, list[str]]  # strategy -> the sources, best first
    hits: dict[str, dict[str, float]]  # strategy -> metric -> value; empty when unanswerable


@dataclass
class FollowupReport:
    k: int
    conversations: int = 0
    turns: list[TurnResult] = field(default_factory=list)

    @property
    def first_turns(self) -> list[TurnResult]:
        return [t for t in self.turns if t.turn == 1]

    @property
    def followups(self) -> list[TurnResult]:
        return [t for t in self.turns if t.turn > 1]

    def metric_names(self) -> list[str]:
        return list(dict.fromkeys(["hit_at_1", f"hit_at_{self.k}", f"mrr_at_{self.k}"]))

    def scores(self, turns: Sequence[TurnResult], strategy: str) -> dict[str, float | None]:
        scored = [t.hits[strategy] for t in turns if t.hits]
        return {name: mean([h[name] for h in scored]) for name in self.metric_names()}

    def gap(self) -> float | None:
        """Standalone hit@k minus follow-up hit@k: what conversation handling loses."""
        name = f"hit_at_{self.k}"
        standalone = self.scores(self.followups, "standalone")[name]
        followup = self.scores(self.followups, "followup")[name]
        if standalone is None or followup is None:
            return None
        return standalone - followup

    def summary(self) -> dict[str, object]:
        return {
            "k": self.k,
            "conversations": self.conversations,
            "followup_turns": len(self.followups),
            "strategies": {s: self.scores(self.followups, s) for s in STRATEGIES},
            "first_turns": {
                "turns": len(self.first_turns),
                **self.scores(self.first_turns, "alone"),
            },
            "gap": self.gap(),
        }


def _history(earlier: Sequence[FollowupTurn]) -> list[Turn]:
    """The chat's history before a turn; retrieval reads only the user's questions."""
    return [turn for t in earlier for turn in (Turn("user", t.question), Turn("assistant", ""))]


def _score(sources: list[str], expected: list[str], k: int) -> dict[str, float]:
    return {
        "hit_at_1": hit_at_k(sources, expected, 1),
        f"hit_at_{k}": hit_at_k(sources, expected, k),
        f"mrr_at_{k}": reciprocal_rank(sources, expected, k),
    }


def evaluate(retriever: Retriever, conversations: Sequence[Conversation], k: int) -> FollowupReport:
    report = FollowupReport(k=k, conversations=len(conversations))
    for conversation in conversations:
        for index, turn in enumerate(conversation.turns):
            if index == 0:  # nothing before it: the three ways are the same search
                sources = [p.source for p in retriever.search(turn.question, k)]
                retrieved = dict.fromkeys(STRATEGIES, sources)
            else:
                history = _history(conversation.turns[:index])
                queries = {
                    "followup": search_queries(turn.question, history),
                    "alone": [turn.question],
                    "standalone": [turn.standalone],
                }
                retrieved = {
                    name: [p.source for p in retriever.search_many(q, k)]
                    for name, q in queries.items()
                }
            expected = turn.expected_sources
            report.turns.append(
                TurnResult(
                    conversation=conversation.id,
                    turn=index + 1,
                    question=turn.question,
                    standalone=turn.standalone,
                    expected=expected,
                    retrieved=retrieved,
                    hits={s: _score(retrieved[s], expected, k) for s in STRATEGIES}
                    if turn.answerable
                    else {},
                )
            )
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _label(name: str) -> str:
    return name.replace("hit_at_", "hit@").replace("mrr_at_", "MRR@")


def markdown(report: FollowupReport, title: str) -> str:
    names = report.metric_names()
    followups, firsts = report.followups, report.first_turns
    lines = [
        f"# {title}",
        "",
        f"{report.conversations} conversations, {len(followups)} follow-up turns, k={report.k}.",
        "",
        "| strategy | " + " | ".join(_label(n) for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for strategy in STRATEGIES:
        scores = report.scores(followups, strategy)
        lines.append(f"| {strategy} | " + " | ".join(_fmt(scores[n]) for n in names) + " |")
    first = report.scores(firsts, "alone")
    lines += [
        "",
        f"First turns ({len(firsts)}, searched as they are): "
        + ", ".join(f"{_label(n)} {_fmt(first[n])}" for n in names)
        + ".",
        f"Gap (standalone - followup hit@{report.k}): {_fmt(report.gap())}.",
        "",
        "followup: the question with the earlier ones, as the chat searches; alone: the "
        "question by itself; standalone: the hand-written question that needs no context.",
        "Each cell: the rank of the first expected source (- when missed), then the sources.",
        "",
        "| conversation | turn | question | expected | " + " | ".join(STRATEGIES) + " |",
        "|---|---:|---|---|" + "---|" * len(STRATEGIES),
    ]
    for t in followups:
        cells = []
        for strategy in STRATEGIES:
            sources = t.retrieved[strategy]
            rank = first_relevant_rank(sources, t.expected, report.k) if t.expected else None
            found = ", ".join(dict.fromkeys(sources)) or "(nothing above the floor)"
            cells.append(f"{rank or '-'}: {found}")
        lines.append(
            f"| {t.conversation} | {t.turn} | {_cell(t.question)} "
            f"| {', '.join(t.expected) or '(none)'} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"
