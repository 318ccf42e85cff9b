"""How many users can one server take? A concurrency sweep, measured like vLLM's own client.

The metrics follow `vllm bench serve` (`vllm.benchmarks.serve.calculate_metrics`), so Quarry's
numbers can be set beside vLLM's published ones:

- TTFT: request sent -> first streamed chunk that carries generated text.
- ITL: the gap between successive text-carrying chunks, pooled over all requests of a level.
- TPOT: per request, (latency - TTFT) / (output tokens - 1); one-token answers are left out.
- E2EL (latency): request sent -> last text-carrying chunk.
- p50/p99: numpy's linear interpolation (`np.percentile`), as vLLM.
- Request and output-token throughput: completed requests and output tokens (the server's
  own `usage` count) over the level's wall-clock duration.

One difference, on purpose: vLLM's client counts the chat stream's first chunk (the role,
no text) as the first token; here only chunks with text count, as with its completions client.

Answers are generated with `ignore_eos` so every request produces exactly the asked number of
tokens (as `vllm bench serve` does with its synthetic datasets): the workload, not the model's
mood, sets the output length. The pure functions (statistics, saturation, ratios) are kept
apart from the client so they can be checked on a recorded run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from quarry.eval.server_metrics import prefix_counters
from quarry.package_data import PROMPTS_DIR, SAMPLE_DOCS
from quarry.settings import QuarrySettings

MIN_GAIN = 0.05  # a doubling of users that adds less output throughput than this saturates

# ----------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    """Requests of one shape: an optional shared system prompt and a cycle of user prompts."""

    name: str
    description: str
    system: str | None
    prompts: tuple[str, ...]
    output_tokens: int

    def messages(self, index: int) -> list[dict[str, str]]:
        prompt = self.prompts[index % len(self.prompts)]
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, {"role": "user", "content": prompt}]


RAG_CONTEXT_CHARS = 5_000  # with the system prompt, ~1,470 shared tokens (SmolLM2 tokenizer)

RAG_QUESTIONS = (
    "How do I start Quarry on a fresh machine?",
    "Which port does the model server use?",
    "How do I require an API key?",
    "What happens when the documents lack the answer?",
    "Which file formats can I add?",
    "How do I stop everything?",
    "Where are the documents stored?",
    "How are long documents split?",
    "What does the relevance floor do?",
    "How do I change the model?",
    "Can I run it on a GPU?",
    "How are sources cited?",
)

CHAT_PROMPTS = (
    "Write a short poem about the sea.",
    "Explain what a hash table is.",
    "Give me three tips for a job interview.",
    "What is the difference between a list and a tuple in Python?",
    "Describe a good breakfast.",
    "Why is the sky blue?",
    "Suggest a name for a grey cat.",
    "How do I boil an egg?",
    "What makes a good password?",
    "Summarise the plot of a detective story.",
    "Explain recursion to a child.",
    "List some uses of a paperclip.",
)


def rag_context(chars: int = RAG_CONTEXT_CHARS) -> str:
    """Passages from the project's own docs, cut at a paragraph: real text, stable across runs."""
    text = "\n\n".join(p.read_text() for p in sorted(SAMPLE_DOCS.glob("*.md")))
    cut = text[:chars]
    return cut[: cut.rfind("\n\n")] if "\n\n" in cut else cut


def rag_workload(output_tokens: int = 64) -> Workload:
    system = (PROMPTS_DIR / "large" / "system.md").read_text().strip()
    return Workload(
        name="rag",
        description="long shared system prompt and context (~1,500 tokens), short questions",
        system=f"{system}\n\nContext:\n{rag_context()}",
        prompts=RAG_QUESTIONS,
        output_tokens=output_tokens,
    )


def chat_workload(output_tokens: int = 128) -> Workload:
    return Workload(
        name="chat",
        description="short prompts, no system prompt, longer answers",
        system=None,
        prompts=CHAT_PROMPTS,
        output_tokens=output_tokens,
    )


def workloads(which: str, output_tokens: int | None = None) -> list[Workload]:
    """`rag`, `chat` or `both`; `output_tokens` overrides each workload's answer length."""
    made = {
        "rag": lambda: rag_workload(output_tokens or 64),
        "chat": lambda: chat_workload(output_tokens or 128),
    }
    names = list(made) if which == "both" else [which]
    return [made[n]() for n in names]


# ----------------------------------------------------------------------------- statistics


@dataclass
class RequestRecord:
    """One streamed request, times in seconds; `start_s` from the start of its level."""

    start_s: float
    ttft_s: float | None
    itl_s: list[float]
    latency_s: float
    prompt_tokens: int
    output_tokens: int
    error: str = ""

    @property
    def success(self) -> bool:
        return not self.error and self.ttft_s is not None


@dataclass
class LevelMetrics:
    concurrency: int
    requests: int
    completed: int
    failed: int
    duration_s: float
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    mean_prompt_tokens: float
    mean_output_tokens: float
    ttft_mean_ms: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_mean_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float
    itl_mean_ms: float
    itl_p50_ms: float
    itl_p99_ms: float
    e2el_p50_ms: float
    e2el_p99_ms: float
    prefix_cache_hit_rate: float | None = None


def percentile(values: Sequence[float], q: float) -> float:
    """vLLM's percentile: numpy's linear interpolation, 0 for no values."""
    return float(np.percentile(values or [0.0], q))


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def level_metrics(
    concurrency: int, records: Sequence[RequestRecord], duration_s: float
) -> LevelMetrics:
    """The level's throughput and latency figures, from its requests and wall-clock duration."""
    done = [r for r in records if r.success]
    ttfts = [r.ttft_s for r in done if r.ttft_s is not None]
    tpots = [
        (r.latency_s - r.ttft_s) / (r.output_tokens - 1)
        for r in done
        if r.ttft_s is not None and r.output_tokens > 1
    ]
    itls = [gap for r in done for gap in r.itl_s]
    e2els = [r.latency_s for r in done]
    output = sum(r.output_tokens for r in done)
    prompt = sum(r.prompt_tokens for r in done)
    ms = 1000.0
    return LevelMetrics(
        concurrency=concurrency,
        requests=len(records),
        completed=len(done),
        failed=len(records) - len(done),
        duration_s=duration_s,
        request_throughput=len(done) / duration_s,
        output_throughput=output / duration_s,
        total_token_throughput=(prompt + output) / duration_s,
        mean_prompt_tokens=prompt / len(done) if done else 0.0,
        mean_output_tokens=output / len(done) if done else 0.0,
        ttft_mean_ms=mean(ttfts) * ms,
        ttft_p50_ms=percentile(ttfts, 50) * ms,
        ttft_p99_ms=percentile(ttfts, 99) * ms,
        tpot_mean_ms=mean(tpots) * ms,
        tpot_p50_ms=percentile(tpots, 50) * ms,
        tpot_p99_ms=percentile(tpots, 99) * ms,
        itl_mean_ms=mean(itls) * ms,
        itl_p50_ms=percentile(itls, 50) * ms,
        itl_p99_ms=percentile(itls, 99) * ms,
        e2el_p50_ms=percentile(e2els, 50) * ms,
        e2el_p99_ms=percentile(e2els, 99) * ms,
    )


def concurrency_levels(max_concurrency: int) -> list[int]:
    """1, 2, 4, 8, ... up to the cap, the cap itself included when it is not a power of two."""
    levels = [1]
    while levels[-1] * 2 <= max_concurrency:
        levels.append(levels[-1] * 2)
    if levels[-1] != max_concurrency:
        levels.append(max_concurrency)
    return levels


def saturation_index(throughputs: Sequence[float], min_gain: float = MIN_GAIN) -> int | None:
    """Index of the level where throughput saturates: the next level gained `min_gain` or less
    over the best so far. None while every level still rose (the sweep should go on)."""
    best = 0
    for i in range(1, len(throughputs)):
        if throughputs[i] <= throughputs[best] * (1 + min_gain):
            return best
        best = i
    return None


def requests_for(concurrency: int, requests: int) -> int:
    """At least two waves of requests per level, so a level is not one burst that ends at once."""
    return max(requests, 2 * concurrency)


@dataclass
class Sweep:
    workload: str
    description: str
    output_tokens: int
    levels: list[LevelMetrics] = field(default_factory=list)
    saturation_concurrency: int | None = None
    records: dict[int, list[RequestRecord]] = field(default_factory=dict)

    def settle(self, min_gain: float = MIN_GAIN) -> None:
        index = saturation_index([lv.output_throughput for lv in self.levels], min_gain)
        self.saturation_concurrency = None if index is None else self.levels[index].concurrency


def ratios(on: Sweep, off: Sweep) -> list[dict[str, float]]:
    """Per common concurrency level: TTFT p50 and output throughput, caching on over off."""
    off_levels = {lv.concurrency: lv for lv in off.levels}
    rows = []
    for lv in on.levels:
        other = off_levels.get(lv.concurrency)
        if other is None:
            continue
        rows.append(
            {
                "concurrency": lv.concurrency,
                "ttft_p50_on_ms": lv.ttft_p50_ms,
                "ttft_p50_off_ms": other.ttft_p50_ms,
                "ttft_p50_ratio": _ratio(lv.ttft_p50_ms, other.ttft_p50_ms),
                "output_throughput_on": lv.output_throughput,
                "output_throughput_off": other.output_throughput,
                "output_throughput_ratio": _ratio(lv.output_throughput, other.output_throughput),
            }
        )
    return rows


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


# ----------------------------------------------------------------------------- the client

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """The server under test: where it is, the model it serves, the key it wants."""

    base_url: str
    model: str
    api_key: str | None = None


async def stream_one(
    client: Any, target: Target, workload: Workload, index: int, level_start: float
) -> RequestRecord:
    """Send one streaming chat request and time its chunks (vLLM's client's timing points)."""
    start = time.perf_counter()
    ttft: float | None = None
    last = start
    itl: list[float] = []
    prompt_tokens = output_tokens = chunks = 0
    error = ""
    try:
        stream = await client.chat.completions.create(
            model=target.model,
            messages=workload.messages(index),
            max_tokens=workload.output_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        async for chunk in stream:
            now = time.perf_counter()
            if chunk.choices and chunk.choices[0].delta.content:
                if ttft is None:
                    ttft = now - start
                else:
                    itl.append(now - last)
                last = now
                chunks += 1
            if chunk.usage:
                prompt_tokens = chunk.usage.prompt_tokens
                output_tokens = chunk.usage.completion_tokens
    except Exception as exc:  # a failed request is counted, not fatal, as in vLLM's client
        error = f"{type(exc).__name__}: {exc}"
    if ttft is None and not error:
        error = "no text in the stream"
    return RequestRecord(
        start_s=start - level_start,
        ttft_s=ttft,
        itl_s=itl,
        latency_s=last - start,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens or chunks,
        error=error,
    )


async def run_level(
    client: Any, target: Target, workload: Workload, concurrency: int, requests: int, first: int
) -> tuple[list[RequestRecord], float]:
    """`requests` requests, at most `concurrency` in flight (vLLM's `--max-concurrency`)."""
    gate = asyncio.Semaphore(concurrency)
    level_start = time.perf_counter()

    async def limited(index: int) -> RequestRecord:
        async with gate:
            return await stream_one(client, target, workload, index, level_start)

    records = await asyncio.gather(*(limited(first + i) for i in range(requests)))
    return list(records), time.perf_counter() - level_start


def _hit_counters(base_url: str) -> tuple[float, float] | None:
    try:
        return prefix_counters(base_url)
    except httpx.HTTPError:
        return None


async def _sweep(
    target: Target,
    workload: Workload,
    levels: Sequence[int],
    requests: int,
    stop_at_saturation: bool,
    min_gain: float,
    progress: Progress,
) -> Sweep:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        base_url=f"{target.base_url}/v1",
        api_key=target.api_key or "unused",
        max_retries=0,  # a retried request would hide its failure inside its latency
        timeout=600,
    )
    sweep = Sweep(workload.name, workload.description, workload.output_tokens)
    async with client:
        warm = await stream_one(client, target, workload, 0, time.perf_counter())
        if warm.error:
            raise ConnectionError(f"The warm-up request to {target.base_url} failed: {warm.error}")
        sent = 1
        for concurrency in levels:
            count = requests_for(concurrency, requests)
            before = _hit_counters(target.base_url)
            records, duration = await run_level(client, target, workload, concurrency, count, sent)
            after = _hit_counters(target.base_url)
            sent += count
            metrics = level_metrics(concurrency, records, duration)
            if before and after and after[0] > before[0]:
                metrics.prefix_cache_hit_rate = (after[1] - before[1]) / (after[0] - before[0])
            sweep.levels.append(metrics)
            sweep.records[concurrency] = records
            progress(
                f"{workload.name}: concurrency {concurrency}: {metrics.output_throughput:.1f} "
                f"output tok/s, TTFT p50 {metrics.ttft_p50_ms:.0f} ms, "
                f"ITL p50 {metrics.itl_p50_ms:.1f} ms"
                + (f", {metrics.failed} failed" if metrics.failed else "")
            )
            sweep.settle(min_gain)
            if stop_at_saturation and sweep.saturation_concurrency is not None:
                break
    return sweep


def run_sweep(
    target: Target,
    workload: Workload,
    requests: int,
    max_concurrency: int,
    *,
    levels: Sequence[int] | None = None,
    min_gain: float = MIN_GAIN,
    progress: Progress = print,
) -> Sweep:
    """Double the concurrency until output throughput stops rising (or the cap); with `levels`
    given, run exactly those (the second server of an A/B comparison)."""
    stop = levels is None
    chosen = list(levels) if levels is not None else concurrency_levels(max_concurrency)
    return asyncio.run(_sweep(target, workload, chosen, requests, stop, min_gain, progress))


def compare_prefix_caching(
    settings: QuarrySettings,
    chosen: Sequence[Workload],
    requests: int,
    max_concurrency: int,
    *,
    min_gain: float = MIN_GAIN,
    progress: Progress = print,
) -> dict[str, dict[str, Sweep]]:
    """The same workloads on two freshly started servers, prefix caching on then off.

    A fresh server each time: a cache warmed by the other run would inflate its numbers. The
    second server runs exactly the levels the first one reached.
    """
    from quarry.app.llm import discover_model
    from quarry.eval.server_metrics import free_port
    from quarry.serve.launch import start_server

    results: dict[str, dict[str, Sweep]] = {w.name: {} for w in chosen}
    for label, enabled in (("on", True), ("off", False)):
        server_settings = settings.server.model_copy(
            update={"port": free_port(), "enable_prefix_caching": enabled}
        )
        run_settings = settings.model_copy(update={"server": server_settings})
        progress(
            f"Starting a fresh vLLM server, prefix caching {label}, on port "
            f"{server_settings.port} ..."
        )
        server = start_server(run_settings)
        try:
            target = Target(
                server_settings.base_url, discover_model(run_settings), server_settings.api_key
            )
            for workload in chosen:
                first = results[workload.name].get("on")
                results[workload.name][label] = run_sweep(
                    target,
                    workload,
                    requests,
                    max_concurrency,
                    levels=[lv.concurrency for lv in first.levels] if first else None,
                    min_gain=min_gain,
                    progress=progress,
                )
        finally:
            server.stop()
    return results


# ----------------------------------------------------------------------------- reports

COLUMNS = (
    ("concurrency", "concurrency", "{:d}"),
    ("requests", "requests", "{:d}"),
    ("req/s", "request_throughput", "{:.2f}"),
    ("output tok/s", "output_throughput", "{:.1f}"),
    ("TTFT p50 ms", "ttft_p50_ms", "{:.0f}"),
    ("TTFT p99 ms", "ttft_p99_ms", "{:.0f}"),
    ("TPOT p50 ms", "tpot_p50_ms", "{:.1f}"),
    ("ITL p50 ms", "itl_p50_ms", "{:.1f}"),
    ("ITL p99 ms", "itl_p99_ms", "{:.1f}"),
)


def level_table(sweep: Sweep) -> str:
    """The per-level Markdown table; the saturation level is marked."""
    header = [c[0] for c in COLUMNS] + ["prefix hits", "failed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for lv in sweep.levels:
        cells = [fmt.format(getattr(lv, name)) for _, name, fmt in COLUMNS]
        if lv.concurrency == sweep.saturation_concurrency:
            cells[0] += " (saturates)"
        hits = lv.prefix_cache_hit_rate
        cells += ["-" if hits is None else f"{hits:.0%}", str(lv.failed)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def saturation_line(sweep: Sweep, min_gain: float = MIN_GAIN) -> str:
    if sweep.saturation_concurrency is None:
        top = sweep.levels[-1].concurrency if sweep.levels else 0
        return f"Throughput still rose at concurrency {top} (the cap): not saturated yet."
    best = next(lv for lv in sweep.levels if lv.concurrency == sweep.saturation_concurrency)
    return (
        f"Throughput saturates at concurrency {best.concurrency} "
        f"({best.output_throughput:.1f} output tok/s): doubling the users added "
        f"{min_gain:.0%} or less."
    )


def sweep_section(sweep: Sweep) -> str:
    prompt = sweep.levels[0].mean_prompt_tokens if sweep.levels else 0
    return "\n".join(
        [
            f"## {sweep.workload}: {sweep.description}",
            "",
            f"Prompt {prompt:.0f} tokens on average, {sweep.output_tokens} output tokens.",
            "",
            level_table(sweep),
            "",
            saturation_line(sweep),
        ]
    )


def ratio_table(rows: Sequence[dict[str, float]]) -> str:
    lines = [
        "| concurrency | TTFT p50 on / off (ms) | TTFT ratio on/off "
        "| output tok/s on / off | throughput ratio on/off |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['concurrency']:.0f} | {r['ttft_p50_on_ms']:.0f} / {r['ttft_p50_off_ms']:.0f} "
            f"| {r['ttft_p50_ratio']:.2f} | {r['output_throughput_on']:.1f} / "
            f"{r['output_throughput_off']:.1f} | {r['output_throughput_ratio']:.2f} |"
        )
    return "\n".join(lines)


HEADER = (
    "Metrics as defined by `vllm bench serve`: TTFT, TPOT and ITL at p50/p99, request and "
    "output-token throughput over each level's wall-clock time; at most `concurrency` "
    "requests in flight."
)


def markdown(sweeps: Sequence[Sweep], meta: dict[str, Any]) -> str:
    intro = f"Server {meta.get('base_url')}, model {meta.get('model')}."
    parts = ["# Serving benchmark", "", intro, "", HEADER]
    for sweep in sweeps:
        parts += ["", sweep_section(sweep)]
    return "\n".join(parts) + "\n"


def comparison_markdown(results: dict[str, dict[str, Sweep]], meta: dict[str, Any]) -> str:
    parts = [
        "# Serving benchmark: prefix caching on against off",
        "",
        f"Model {meta.get('model')}; each side on a freshly started server. Ratios are "
        "on / off: a TTFT ratio below 1 and a throughput ratio above 1 favour caching.",
        "",
        HEADER,
    ]
    for name, pair in results.items():
        parts += ["", f"## {name}: ratios", "", ratio_table(ratios(pair["on"], pair["off"]))]
        for label, sweep in pair.items():
            parts += ["", f"### prefix caching {label}", "", level_table(sweep)]
    return "\n".join(parts) + "\n"


def sweep_data(sweep: Sweep) -> dict[str, Any]:
    data = asdict(sweep)
    data["records"] = {str(c): [asdict(r) for r in rs] for c, rs in sweep.records.items()}
    return data


def plot(series: dict[str, Sweep], path: Path) -> Path:
    """Output throughput, and TTFT and ITL p50, against concurrency, one line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, sweep in series.items():
        xs = [lv.concurrency for lv in sweep.levels]
        (line,) = left.plot(xs, [lv.output_throughput for lv in sweep.levels], "o-", label=label)
        color = line.get_color()  # one colour per series in both panels
        if sweep.saturation_concurrency is not None:
            sat = next(lv for lv in sweep.levels if lv.concurrency == sweep.saturation_concurrency)
            left.plot([sat.concurrency], [sat.output_throughput], "k*", markersize=12)
        ttfts = [lv.ttft_p50_ms for lv in sweep.levels]
        right.plot(xs, ttfts, "o-", color=color, label=f"{label} TTFT p50")
        itls = [lv.itl_p50_ms for lv in sweep.levels]
        right.plot(xs, itls, "s--", color=color, label=f"{label} ITL p50")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("concurrent requests")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    left.set_ylabel("output tokens/s")
    left.set_title("Throughput (star: saturation)")
    right.set_yscale("log")
    right.set_ylabel("ms")
    right.set_title("Latency p50")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


STEM = "bench-serve"


def write_reports(sweeps: Sequence[Sweep], meta: dict[str, Any], output: Path) -> list[Path]:
    """`bench-serve.json`, `.md` and `.png` in `output`."""
    output.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "workloads": {s.workload: sweep_data(s) for s in sweeps}}
    json_path = output / f"{STEM}.json"
    json_path.write_text(json.dumps(data, indent=1))
    md_path = output / f"{STEM}.md"
    md_path.write_text(markdown(sweeps, meta))
    png = plot({s.workload: s for s in sweeps}, output / f"{STEM}.png")
    return [json_path, md_path, png]


def write_comparison(
    results: dict[str, dict[str, Sweep]], meta: dict[str, Any], output: Path
) -> list[Path]:
    """`bench-serve-prefix-caching.json`, `.md` and `.png` in `output`."""
    output.mkdir(parents=True, exist_ok=True)
    stem = f"{STEM}-prefix-caching"
    data = {
        "meta": meta,
        "workloads": {
            name: {
                "ratios": ratios(pair["on"], pair["off"]),
                **{label: sweep_data(s) for label, s in pair.items()},
            }
            for name, pair in results.items()
        },
    }
    json_path = output / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=1))
    md_path = output / f"{stem}.md"
    md_path.write_text(comparison_markdown(results, meta))
    series = {
        f"{name} caching {label}": s for name, pair in results.items() for label, s in pair.items()
    }
    png = plot(series, output / f"{stem}.png")
    return [json_path, md_path, png]
