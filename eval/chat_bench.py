"""`quarry bench chat`: how much later than the server's own first token does Quarry's come?

A scripted conversation goes through the real chat chain (`Components.chain`, the
same chain the chat page uses), each turn with the earlier turns as history. Per turn:

- Quarry's time to first token: the chain's own `Answer.ttft_s`, from the question to the
  first token of the answer, so it holds everything a user waits for: retrieval,
  screening, counting the request's tokens, any model call the chain makes before the
  answer (tool rounds), and the answer request's own time to first token.
- The server's time to first token for the answer request, from vLLM's Prometheus
  `/metrics`: the deltas of `vllm:time_to_first_token_seconds_sum` and `_count`.
- Their ratio (Quarry / server): 1.0 would mean Quarry adds nothing.
- The prefix-cache hit rate of the answer request: the deltas of
  `vllm:prefix_cache_hits_total` over `vllm:prefix_cache_queries_total`.

The answer request is told apart from the others of the turn (tool rounds, the optional
citation check by the model) by reading the counters also at each `Status` event before
the first token (the chain is paused there: a request before it has finished, the answer
request is not sent yet) and at the first token. The time those reads take is taken off
Quarry's TTFT, since the chain's clock runs while it is paused. `server_requests` counts
the generation requests the whole turn made; `answer_requests` those in the answer's window:
1 when the answer request was isolated (its `prompt_tokens_queried` then equals the chain's
own count of the request, `chain_prompt_tokens`, unless tool schemas went with it); more
(the mean is reported then) when the chain sent another request without a `Status` in
between, or another client used the server at the same time, which the counters cannot
tell apart. `others_in_flight` samples vLLM's running and waiting gauges at those reads:
anything beyond the bench's own request is another client's, and the report then warns
that the numbers are mixed (the server is best left to the bench while it runs).

Before turn 1 nothing is warmed except what building the chain already does, as the chat
page does when it opens (`ChatChain.warm`: the embedding model, Chroma, the keyword index,
the server's tokenizer), so turn 1 measures the first question as a user meets it. With
`warmup` (the default, and the CLI's) one throwaway request, unrelated to the conversation
so that it leaves nothing in the prefix cache the conversation could reuse, goes straight to
the server first, so that the server's own first-request costs (the first forward pass after
start) do not land on turn 1. The server's prefix cache is not reset: on a server that
already answered these questions, turn 1 can hit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean
from typing import Any

import httpx

from quarry.app.chain import Answer, ChatChain, Status, Token, Turn
from quarry.eval.server_metrics import metrics_text, parse_samples

CONVERSATION = [
    "How do I change the port of the model server?",
    "And the chat page?",
    "Which file formats can I ingest?",
    "How do I use a GPU?",
    "What does top-k change?",
]

TTFT_SUM = "vllm:time_to_first_token_seconds_sum"
TTFT_COUNT = "vllm:time_to_first_token_seconds_count"
CACHE_QUERIES = "vllm:prefix_cache_queries_total"
CACHE_HITS = "vllm:prefix_cache_hits_total"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"


SHARED_WARNING = (
    "The server was also answering other clients' requests: its counters mix them in and "
    "the turns waited on them. Run the bench on a server of its own for numbers to compare."
)


class MetricsUnavailableError(RuntimeError):
    """The server's `/metrics` does not answer or lacks vLLM's TTFT histogram."""


@dataclass(frozen=True)
class ServerCounters:
    """vLLM's cumulative counters at one moment; subtract two for what happened between.

    `in_flight` (requests running or waiting) is a gauge: a difference keeps the later one's."""

    ttft_sum_s: float = 0.0
    ttft_count: float = 0.0
    cache_queries: float = 0.0
    cache_hits: float = 0.0
    in_flight: float = 0.0

    @classmethod
    def from_text(cls, text: str) -> ServerCounters:
        totals = parse_samples(text)
        if TTFT_COUNT not in totals:
            raise MetricsUnavailableError(
                f"The server's /metrics has no {TTFT_COUNT}: is it a vLLM server?"
            )
        return cls(
            totals.get(TTFT_SUM, 0.0),
            totals.get(TTFT_COUNT, 0.0),
            totals.get(CACHE_QUERIES, 0.0),
            totals.get(CACHE_HITS, 0.0),
            totals.get(RUNNING, 0.0) + totals.get(WAITING, 0.0),
        )

    def __sub__(self, earlier: ServerCounters) -> ServerCounters:
        return ServerCounters(
            self.ttft_sum_s - earlier.ttft_sum_s,
            self.ttft_count - earlier.ttft_count,
            self.cache_queries - earlier.cache_queries,
            self.cache_hits - earlier.cache_hits,
            self.in_flight,
        )

    @property
    def requests(self) -> int:
        """Generation requests that produced a first token (in a delta)."""
        return round(self.ttft_count)

    @property
    def mean_ttft_s(self) -> float | None:
        return self.ttft_sum_s / self.ttft_count if self.ttft_count > 0 else None

    @property
    def hit_rate(self) -> float | None:
        return self.cache_hits / self.cache_queries if self.cache_queries > 0 else None


def read_server_counters(base_url: str) -> ServerCounters:
    try:
        return ServerCounters.from_text(metrics_text(base_url))
    except httpx.HTTPError as exc:
        raise MetricsUnavailableError(f"Could not read {base_url}/metrics: {exc}") from None


@dataclass
class ChatTurnResult:
    turn: int
    question: str
    quarry_ttft_s: float | None  # None: no answer was generated (a refusal without a request)
    server_ttft_s: float | None  # the answer request's; the mean when answer_requests > 1
    ratio: float | None  # quarry_ttft_s / server_ttft_s
    server_requests: int  # generation requests of the whole turn (tool rounds, checks)
    prompt_tokens_queried: int  # the answer request's tokens looked up in the prefix cache
    cache_hit_rate: float | None
    answer_requests: int = 1  # requests in the answer's window: 1 when it was isolated
    cached_tokens: int = 0
    pause_s: float = 0.0  # the bench's own counter reads, taken off quarry_ttft_s
    others_in_flight: int = 0  # other clients' requests seen running or waiting (sampled)
    chain_prompt_tokens: int = 0  # the chain's own count of the answer request's prompt


def turn_result(
    turn: int,
    question: str,
    quarry_ttft_s: float | None,
    *,
    before: ServerCounters,
    answer_start: ServerCounters,
    first_token: ServerCounters,
    after: ServerCounters,
    pause_s: float = 0.0,
    chain_prompt_tokens: int = 0,
) -> ChatTurnResult:
    """One turn's numbers from the counters read before it, when the answer request was about
    to be sent, at the answer's first token and after the turn."""
    window = first_token - answer_start
    server = window.mean_ttft_s
    ratio = quarry_ttft_s / server if quarry_ttft_s is not None and server else None
    return ChatTurnResult(
        turn=turn,
        question=question,
        quarry_ttft_s=quarry_ttft_s,
        server_ttft_s=server,
        ratio=ratio,
        server_requests=(after - before).requests,
        prompt_tokens_queried=round(window.cache_queries),
        cache_hit_rate=window.hit_rate,
        answer_requests=window.requests,
        cached_tokens=round(window.cache_hits),
        pause_s=pause_s,
        chain_prompt_tokens=chain_prompt_tokens,
        # Ours: none before the turn, the answer request at its first token, none after.
        others_in_flight=max(
            round(before.in_flight), round(first_token.in_flight) - 1, round(after.in_flight), 0
        ),
    )


def warm_server(base_url: str, model: str, api_key: str | None = None) -> None:
    """One short request unrelated to the conversation: the server's first-request costs."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with the single word: ready."}],
        "max_tokens": 1,
        "temperature": 0,
    }
    try:
        response = httpx.post(
            f"{base_url}/v1/chat/completions", json=payload, headers=headers, timeout=300
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ConnectionError(f"The warm-up request to {base_url} failed: {exc}") from None


def run_turn(
    chain: ChatChain, base_url: str, turn: int, question: str, history: Sequence[Turn]
) -> tuple[ChatTurnResult, Answer]:
    """Ask `question` through the chain, reading the server's counters around the answer."""
    before = read_server_counters(base_url)
    answer_start = before
    first_token: ServerCounters | None = None
    answer: Answer | None = None
    pause_s = 0.0
    for event in chain.stream(question, history):
        if isinstance(event, Answer):
            answer = event
        elif first_token is not None:
            continue
        elif isinstance(event, Status):
            paused = time.monotonic()
            answer_start = read_server_counters(base_url)
            pause_s += time.monotonic() - paused
        elif isinstance(event, Token):
            first_token = read_server_counters(base_url)  # after ttft_s: not taken off
    after = read_server_counters(base_url)
    if answer is None:
        raise RuntimeError(f"The chain ended without an answer to {question!r}.")
    quarry = answer.ttft_s - pause_s if answer.ttft_s is not None else None
    result = turn_result(
        turn,
        question,
        quarry,
        before=before,
        answer_start=answer_start,
        first_token=first_token or after,
        after=after,
        pause_s=pause_s,
        chain_prompt_tokens=answer.prompt_tokens,
    )
    return result, answer


def run_chat_bench(
    chain: ChatChain,
    base_url: str,
    questions: Sequence[str] = CONVERSATION,
    warmup: bool = True,
    *,
    api_key: str | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> list[ChatTurnResult]:
    """The conversation, each question with the earlier questions and answers as history.

    `warmup` (default on) first sends one throwaway request straight to the server, not
    through the chain; nothing of Quarry's own is warmed either way."""
    if warmup:
        warm_server(base_url, chain.llm.model_name, api_key)
    history: list[Turn] = []
    results = []
    for number, question in enumerate(questions, 1):
        if progress is not None:
            progress(number, question)
        result, answer = run_turn(chain, base_url, number, question, history)
        results.append(result)
        history += [Turn("user", question), Turn("assistant", answer.text)]
    return results


def _stats(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    known = [v for v in values if v is not None]
    return (mean(known), max(known)) if known else (None, None)


def summarize(results: Sequence[ChatTurnResult]) -> dict[str, Any]:
    """Mean and max ratio for turn 1 and for the follow-ups, with the TTFTs behind them."""
    first = [r for r in results if r.turn == 1]
    followups = [r for r in results if r.turn > 1]
    summary: dict[str, Any] = {"turns": len(results)}
    for name, group in (("first", first), ("followup", followups)):
        summary[f"{name}_ratio_mean"], summary[f"{name}_ratio_max"] = _stats(
            [r.ratio for r in group]
        )
        summary[f"{name}_quarry_ttft_mean_s"] = _stats([r.quarry_ttft_s for r in group])[0]
        summary[f"{name}_server_ttft_mean_s"] = _stats([r.server_ttft_s for r in group])[0]
        summary[f"{name}_cache_hit_rate_mean"] = _stats([r.cache_hit_rate for r in group])[0]
    summary["unmeasured_turns"] = [r.turn for r in results if r.ratio is None]
    summary["not_isolated_turns"] = [r.turn for r in results if r.answer_requests != 1]
    summary["extra_requests"] = sum(max(r.server_requests - r.answer_requests, 0) for r in results)
    summary["shared_server"] = any(r.others_in_flight > 0 for r in results)
    return summary


def exceeded(
    summary: dict[str, Any], max_ratio_first: float | None, max_ratio_followup: float | None
) -> list[str]:
    """One line per limit the run went over (the max ratio of its turns)."""
    lines = []
    for name, limit, label in (
        ("first", max_ratio_first, "turn 1"),
        ("followup", max_ratio_followup, "follow-ups"),
    ):
        worst = summary[f"{name}_ratio_max"]
        if limit is not None and worst is not None and worst > limit:
            lines.append(f"{label}: ratio {worst:.2f} > {limit:.2f}")
    return lines


def _num(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def markdown_report(
    results: Sequence[ChatTurnResult], title: str = "Chat bench", note: str = ""
) -> str:
    summary = summarize(results)
    lines = [
        f"# {title}",
        "",
        *([note, ""] if note else []),
        "Quarry TTFT: the chain's question-to-first-token time (retrieval, screening, any "
        "model call before the answer, and the answer request). Server TTFT: vLLM's own, "
        "for the answer request. "
        "Requests: generation requests of the turn (the answer's window when not 1).",
        "",
        "| Turn | Question | Quarry TTFT s | Server TTFT s | Ratio "
        "| Requests | Prompt tokens | Cache hit |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        requests = str(r.server_requests)
        if r.answer_requests != 1:
            requests += f" ({r.answer_requests} in answer window)"
        lines.append(
            f"| {r.turn} | {r.question} | {_num(r.quarry_ttft_s)} | {_num(r.server_ttft_s)} "
            f"| {_num(r.ratio, '.2f')} "
            f"| {requests} | {r.prompt_tokens_queried} | {_num(r.cache_hit_rate, '.0%')} |"
        )
    lines += [
        "",
        f"- Turn 1: ratio {_num(summary['first_ratio_mean'], '.2f')} "
        f"(Quarry {_num(summary['first_quarry_ttft_mean_s'])} s, "
        f"server {_num(summary['first_server_ttft_mean_s'])} s)",
        f"- Follow-ups: ratio mean {_num(summary['followup_ratio_mean'], '.2f')}, "
        f"max {_num(summary['followup_ratio_max'], '.2f')} "
        f"(Quarry mean {_num(summary['followup_quarry_ttft_mean_s'])} s, "
        f"server mean {_num(summary['followup_server_ttft_mean_s'])} s, "
        f"cache hit mean {_num(summary['followup_cache_hit_rate_mean'], '.0%')})",
        f"- Other generation requests (tools, checks): {summary['extra_requests']}",
    ]
    if summary["not_isolated_turns"]:
        lines.append(
            f"- Answer request not isolated in turns {summary['not_isolated_turns']}: their "
            "server TTFT is the mean over the requests in the window."
        )
    if summary["shared_server"]:
        lines.append(f"- {SHARED_WARNING}")
    if summary["unmeasured_turns"]:
        lines.append(f"- No ratio for turns {summary['unmeasured_turns']} (no generation).")
    return "\n".join(lines) + "\n"


def write_reports(
    results: Sequence[ChatTurnResult], output: Path, meta: dict[str, Any], markdown: str
) -> tuple[Path, Path]:
    output.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output / "bench-chat.json", output / "bench-chat.md"
    data = {**meta, "summary": summarize(results), "turns": [asdict(r) for r in results]}
    json_path.write_text(json.dumps(data, indent=2))
    md_path.write_text(markdown)
    return json_path, md_path
