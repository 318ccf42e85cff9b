"""Does Quarry's request layout let vLLM reuse earlier turns? A scripted 8-turn conversation.

Three layouts answer the same scripted questions over the same retrieved passages:

- `quarry`: the chain's own layout (a stable system prompt, then earlier turns as plain
  question and answer, then the question with its passages in document order).
- `replay`: like `quarry`, but earlier turns are replayed exactly as sent, passages included,
  so each request starts with the whole previous request (the most cache reuse possible).
- `naive`: the common "stuff the context into the system prompt" layout: passages, by score,
  in the system prompt, followed by the history and the question.

Each layout runs on a freshly started server (a warm cache from the other layout would
inflate its numbers), and each turn reads vLLM's prefix-cache counters from `/metrics`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from quarry.app.chain import ChatChain, Turn, history_messages, stable_order
from quarry.app.retrieval import Passage
from quarry.app.tools import PassageRegistry
from quarry.components import Components
from quarry.eval.server_metrics import free_port, prefix_counters
from quarry.package_data import SAMPLE_DOCS
from quarry.serve.launch import start_server
from quarry.settings import QuarrySettings

CONVERSATION = [
    "How do I start Quarry on a fresh machine?",
    "Which port does the model server listen on, and how do I change it?",
    "And the chat page, which port does it use?",
    "How do I require an API key?",
    "What do the temperature presets mean?",
    "What happens when the documents do not have the answer?",
    "Which file formats can I add?",
    "How do I stop everything?",
]


@dataclass
class TurnResult:
    turn: int
    prompt_tokens: int
    cached_tokens: int
    hit_rate: float
    ttft_s: float


@dataclass(frozen=True)
class PastTurn:
    question: str
    sent: list[BaseMessage]  # the request's last message, as this layout sent it
    answer: str


Layout = Callable[[ChatChain, str, Sequence[PastTurn], Sequence[Passage]], list[BaseMessage]]


def plain_turns(history: Sequence[PastTurn]) -> list[Turn]:
    return [
        t for past in history for t in (Turn("user", past.question), Turn("assistant", past.answer))
    ]


def quarry_layout(
    chain: ChatChain, question: str, history: Sequence[PastTurn], passages: Sequence[Passage]
) -> list[BaseMessage]:
    return chain.messages(question, plain_turns(history), stable_order(passages), PassageRegistry())


def replay_layout(
    chain: ChatChain, question: str, history: Sequence[PastTurn], passages: Sequence[Passage]
) -> list[BaseMessage]:
    current = quarry_layout(chain, question, [], passages)
    replayed = [m for past in history for m in (*past.sent, AIMessage(past.answer))]
    return [current[0], *replayed, *current[1:]]


def naive_layout(
    chain: ChatChain, question: str, history: Sequence[PastTurn], passages: Sequence[Passage]
) -> list[BaseMessage]:
    context = "\n\n".join(f"[{i}] {p.label}\n{p.text}" for i, p in enumerate(passages, 1))
    system = f"{chain.system_prompt}\n\nContext:\n{context}"
    return [SystemMessage(system), *history_messages(plain_turns(history)), HumanMessage(question)]


LAYOUTS: dict[str, Layout] = {
    "quarry": quarry_layout,
    "replay": replay_layout,
    "naive": naive_layout,
}


def run_conversation(
    chain: ChatChain, base_url: str, layout: Layout, max_tokens: int
) -> list[TurnResult]:
    history: list[PastTurn] = []
    results = []
    for number, question in enumerate(CONVERSATION, 1):
        passages = chain.retriever.search(question, chain.retriever.top_k)
        messages = layout(chain, question, history, passages)
        queried, hits = prefix_counters(base_url)
        started = time.monotonic()
        ttft = None
        text = ""
        for chunk in chain.llm.stream(messages, max_tokens=max_tokens):
            if chunk.content and ttft is None:
                ttft = time.monotonic() - started
            text += str(chunk.content)
        queried_after, hits_after = prefix_counters(base_url)
        prompt_tokens = int(queried_after - queried)
        cached = int(hits_after - hits)
        results.append(
            TurnResult(
                number,
                prompt_tokens,
                cached,
                cached / prompt_tokens if prompt_tokens else 0.0,
                ttft if ttft is not None else time.monotonic() - started,
            )
        )
        history.append(PastTurn(question, messages[-1:], text))
    return results


def run_benchmark(
    settings: QuarrySettings, max_tokens: int = 48, progress: Callable[[str], None] = print
) -> dict[str, list[TurnResult]]:
    """Both layouts, each on its own freshly started server; the sample docs as collection."""
    data_dir = Path(tempfile.mkdtemp(prefix="quarry-prefix-bench-"))
    settings = settings.model_copy(update={"data_dir": data_dir})
    progress(f"Ingesting the sample documents into {data_dir} ...")
    components = Components(settings)
    components.ingest([SAMPLE_DOCS])
    retriever = components.retriever()
    results: dict[str, list[TurnResult]] = {}
    for name, layout in LAYOUTS.items():
        port = free_port()
        run_settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"port": port})}
        )
        progress(f"Starting a fresh vLLM server for the {name!r} layout on port {port} ...")
        server = start_server(run_settings)
        try:
            llm = components.with_settings(run_settings).chat_model(temperature=0)
            chain = ChatChain(llm, retriever, run_settings.chat)
            results[name] = run_conversation(
                chain, run_settings.server.base_url, layout, max_tokens
            )
        finally:
            server.stop()
    return results


BASELINE = "naive"


def summary(results: dict[str, list[TurnResult]]) -> dict[str, dict[str, float]]:
    """Per layout: overall hit rate, mean TTFT of turns 2-8, and that TTFT over the baseline's."""

    def mean_ttft(rows: list[TurnResult]) -> float:
        later = rows[1:]  # turn 1 has nothing to reuse in any layout
        return sum(r.ttft_s for r in later) / len(later)

    baseline = mean_ttft(results[BASELINE])
    return {
        name: {
            "hit_rate": sum(r.cached_tokens for r in rows)
            / max(sum(r.prompt_tokens for r in rows), 1),
            "mean_ttft_turns_2_8_s": mean_ttft(rows),
            "ttft_vs_naive": mean_ttft(rows) / baseline,
        }
        for name, rows in results.items()
    }


def markdown_report(results: dict[str, list[TurnResult]]) -> str:
    names = list(results)
    header = " | ".join(f"tokens / hit / TTFT s ({n})" for n in names)
    lines = [f"| turn | {header} |", "|---:|" + "---:|" * len(names)]
    for turn in range(len(CONVERSATION)):
        cells = " | ".join(
            f"{r.prompt_tokens} / {r.hit_rate:.0%} / {r.ttft_s:.3f}"
            for r in (results[n][turn] for n in names)
        )
        lines.append(f"| {turn + 1} | {cells} |")
    lines += [
        "",
        "| layout | hit rate | mean TTFT, turns 2-8 | TTFT vs naive |",
        "|---|---:|---:|---:|",
    ]
    for name, row in summary(results).items():
        lines.append(
            f"| {name} | {row['hit_rate']:.1%} | {row['mean_ttft_turns_2_8_s']:.3f} s "
            f"| {row['ttft_vs_naive']:.2f}x |"
        )
    return "\n".join(lines)


def write_reports(results: dict[str, list[TurnResult]], output: Path) -> tuple[Path, Path]:
    output.mkdir(parents=True, exist_ok=True)
    data = {name: [asdict(r) for r in rows] for name, rows in results.items()}
    json_path = output / "prefix-cache.json"
    json_path.write_text(json.dumps({"turns": data, "summary": summary(results)}, indent=2))
    md_path = output / "prefix-cache.md"
    md_path.write_text("# Prefix-cache benchmark\n\n" + markdown_report(results) + "\n")
    return json_path, md_path
