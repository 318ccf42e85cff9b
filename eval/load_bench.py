"""`quarry bench load`: many conversations at once through `quarry api`, beside vLLM alone,
then browser sessions on the chat page (eval/page_load.py).

For each level of concurrency (1, 4, 16, 32 by default), that many conversations run at once,
each a few turns of streamed questions with the earlier turns as history, through a
`quarry api` this bench starts on 127.0.0.1 (the model server must be running). The same
number of single questions then go straight to the model server, the baseline: what the
server alone takes at that concurrency. Per level and target: errors (which must be 0),
time to first token and total latency, p50 and p99. The whole run repeats `rounds` times,
and the resident memory of the API process and of the model server is read before the
first round and after each: memory that grows round after round is a leak.

Everything is bounded: each request by `request_timeout_s`, the whole run by `max_minutes`
(levels not reached are reported as skipped).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import openai
import psutil

from quarry.app.launch import child_env
from quarry.eval.chat_bench import CONVERSATION
from quarry.eval.metrics import percentile
from quarry.eval.page_load import PageLoadUnavailableError, PageRun, run_page_load
from quarry.eval.page_load import markdown_report as page_markdown
from quarry.eval.server_metrics import free_port
from quarry.serve.process import ManagedProcess
from quarry.settings import QuarrySettings

LEVELS = (1, 4, 16, 32)
QUARRY, SERVER = "quarry api", "vLLM alone"


@dataclass(frozen=True)
class RequestResult:
    ttft_s: float | None
    total_s: float
    error: str = ""


@dataclass
class LevelResult:
    round: int
    target: str
    concurrency: int
    requests: int
    errors: int
    ttft_p50_s: float
    ttft_p99_s: float
    total_p50_s: float
    total_p99_s: float
    wall_s: float
    first_error: str = ""


@dataclass
class MemoryTrace:
    process: str
    pids: list[int]
    mib: list[float] = field(default_factory=list)  # before round 1, then after each round

    @property
    def growth_mib(self) -> float:
        """From after the first round (caches filled) to after the last."""
        return self.mib[-1] - self.mib[1] if len(self.mib) > 2 else 0.0


@dataclass
class LoadReport:
    collection: str
    turns: int
    max_tokens: int
    levels: list[LevelResult] = field(default_factory=list)
    memory: list[MemoryTrace] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    page: list[PageRun] = field(default_factory=list)  # browser sessions on the chat page
    page_skipped: str = ""

    @property
    def errors(self) -> int:
        """Failed requests, and page answers that did not complete."""
        unfinished = sum(run.sessions - run.complete for run in self.page)
        return sum(level.errors for level in self.levels) + unfinished


def _stream(
    client: openai.OpenAI, model: str, messages: list[Any], max_tokens: int
) -> tuple[RequestResult, str]:
    """One streamed request: its timings, and the text that came back."""
    started = time.monotonic()
    ttft, text = None, ""
    try:
        stream = client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, stream=True, temperature=0
        )
        for chunk in stream:
            piece = chunk.choices[0].delta.content if chunk.choices else None
            if piece:
                ttft = ttft if ttft is not None else time.monotonic() - started
                text += piece
    except openai.OpenAIError as exc:
        return RequestResult(ttft, time.monotonic() - started, f"{type(exc).__name__}: {exc}"), ""
    if ttft is None:
        return RequestResult(None, time.monotonic() - started, "no text came back"), ""
    return RequestResult(ttft, time.monotonic() - started), text


def conversation(
    client: openai.OpenAI, model: str, first: int, turns: int, max_tokens: int
) -> list[RequestResult]:
    """`turns` questions of the script from `first` on, each with the turns before it."""
    messages: list[Any] = []
    results = []
    for turn in range(turns):
        messages.append(
            {"role": "user", "content": CONVERSATION[(first + turn) % len(CONVERSATION)]}
        )
        result, text = _stream(client, model, messages, max_tokens)
        results.append(result)
        if result.error:
            break
        messages.append({"role": "assistant", "content": text})
    return results


def level(
    round_number: int,
    target: str,
    concurrency: int,
    ask: Callable[[int], list[RequestResult]],
) -> LevelResult:
    """`concurrency` calls of `ask` at once, their requests summed up."""
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [r for batch in pool.map(ask, range(concurrency)) for r in batch]
    ttfts = [r.ttft_s for r in results if r.ttft_s is not None]
    totals = [r.total_s for r in results if not r.error]
    errors = [r.error for r in results if r.error]
    return LevelResult(
        round=round_number,
        target=target,
        concurrency=concurrency,
        requests=len(results),
        errors=len(errors),
        ttft_p50_s=percentile(ttfts, 50),
        ttft_p99_s=percentile(ttfts, 99),
        total_p50_s=percentile(totals, 50),
        total_p99_s=percentile(totals, 99),
        wall_s=time.monotonic() - started,
        first_error=errors[0] if errors else "",
    )


def resident_mib(pids: Sequence[int]) -> float:
    """Resident memory of these processes and their children, in MiB."""
    total = 0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            family = [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += member.memory_info().rss
    return total / 2**20


def listening_on(port: int) -> list[int]:
    """The processes listening on a local TCP port (the model server)."""
    pids = set()
    for conn in psutil.net_connections(kind="tcp"):
        listening = conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        if listening and conn.pid is not None:
            pids.add(conn.pid)
    return sorted(pids)


def start_api(
    settings: QuarrySettings, collection: str, log_dir: Path
) -> tuple[ManagedProcess, str]:
    """`quarry api` on a free port of 127.0.0.1, with this run's settings and no key."""
    port = free_port()
    env = {
        **child_env(settings, collection),
        "QUARRY_API_HOST": "127.0.0.1",
        "QUARRY_API_PORT": str(port),
        "QUARRY_API_API_KEY": "",
    }
    process = ManagedProcess(
        [sys.executable, "-m", "quarry.cli", "api"],
        log_dir / "bench-load-api.log",
        env=env,
        name="quarry api",
        health_url=f"http://127.0.0.1:{port}/health",
    ).start()
    process.wait_healthy(180)
    return process, f"http://127.0.0.1:{port}/v1"


def run_load(
    settings: QuarrySettings,
    *,
    collection: str,
    server_model: str,
    levels: Sequence[int] = LEVELS,
    turns: int = 2,
    rounds: int = 2,
    max_tokens: int = 48,
    request_timeout_s: float = 300,
    max_minutes: float = 30,
    page_sessions: int = 8,
    log_dir: Path = Path("reports"),
    progress: Callable[[str], None] = lambda _: None,
) -> LoadReport:
    """The load run described above, then `page_sessions` browser sessions asking the chat
    page at once (none when 0); the model server must be running."""
    report = LoadReport(collection, turns, max_tokens)
    deadline = time.monotonic() + max_minutes * 60
    log_dir.mkdir(parents=True, exist_ok=True)
    api, api_url = start_api(settings, collection, log_dir)
    try:
        quarry = openai.OpenAI(
            base_url=api_url, api_key="unused", max_retries=0, timeout=request_timeout_s
        )
        server = openai.OpenAI(
            base_url=f"{settings.server.base_url}/v1",
            api_key=settings.server.api_key or "unused",
            max_retries=0,
            timeout=request_timeout_s,
        )
        model = f"quarry/{collection}"
        progress("Warming the API up (first question to the collection)...")
        conversation(quarry, model, 0, 1, max_tokens)
        traces = [
            MemoryTrace(QUARRY, [api.process.pid] if api.process else []),
            MemoryTrace("model server", listening_on(settings.server.port)),
        ]
        for trace in traces:
            trace.mib.append(resident_mib(trace.pids))
        for round_number in range(1, rounds + 1):
            for concurrency in levels:
                if time.monotonic() > deadline:
                    report.skipped.append(f"round {round_number}, {concurrency} at once")
                    continue
                progress(f"Round {round_number}: {concurrency} conversations through Quarry...")
                report.levels.append(
                    level(
                        round_number,
                        QUARRY,
                        concurrency,
                        lambda i: conversation(quarry, model, i, turns, max_tokens),
                    )
                )
                progress(f"Round {round_number}: {concurrency} questions straight to vLLM...")
                report.levels.append(
                    level(
                        round_number,
                        SERVER,
                        concurrency,
                        lambda i: conversation(server, server_model, i, 1, max_tokens),
                    )
                )
            for trace in traces:
                trace.mib.append(resident_mib(trace.pids))
        report.memory = traces
    finally:
        api.stop()
    if page_sessions:
        try:
            report.page = run_page_load(
                settings,
                child_env(settings, collection),
                sessions=page_sessions,
                timeout_s=request_timeout_s * 2,
                log_dir=log_dir,
                progress=progress,
            )
        except PageLoadUnavailableError as exc:
            report.page_skipped = str(exc)
    return report


def markdown_report(report: LoadReport) -> str:
    lines = [
        f"# Load: {report.collection}, {report.turns} turns per conversation, "
        f"{report.max_tokens} tokens per answer",
        "",
        "| round | target | at once | requests | errors | TTFT p50 s | TTFT p99 s | "
        "total p50 s | total p99 s | TTFT p50 / vLLM's |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    baseline = {(r.round, r.concurrency): r.ttft_p50_s for r in report.levels if r.target == SERVER}
    for r in report.levels:
        base = baseline.get((r.round, r.concurrency))
        ratio = f"{r.ttft_p50_s / base:.2f}" if r.target == QUARRY and base else ""
        lines.append(
            f"| {r.round} | {r.target} | {r.concurrency} | {r.requests} | {r.errors} | "
            f"{r.ttft_p50_s:.2f} | {r.ttft_p99_s:.2f} | {r.total_p50_s:.2f} | "
            f"{r.total_p99_s:.2f} | {ratio} |"
        )
    lines += ["", "| process | MiB before | MiB after each round | growth after round 1 |"]
    lines.append("|---|---:|---|---:|")
    for trace in report.memory:
        after = ", ".join(f"{m:.0f}" for m in trace.mib[1:])
        lines.append(
            f"| {trace.process} | {trace.mib[0]:.0f} | {after} | {trace.growth_mib:+.0f} |"
        )
    errors = [r for r in report.levels if r.errors]
    lines += ["", f"Errors: {report.errors}."]
    lines += [f"- {r.target}, {r.concurrency} at once: {r.first_error}" for r in errors]
    if report.skipped:
        lines.append("Skipped (time limit): " + "; ".join(report.skipped))
    if report.page:
        lines += ["", "## The chat page", "", page_markdown(report.page).rstrip()]
    if report.page_skipped:
        lines += ["", f"Chat page sessions not run: {report.page_skipped}"]
    return "\n".join(lines) + "\n"


def write_reports(report: LoadReport, output: Path) -> tuple[Path, Path]:
    output.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output / "bench-load.json", output / "bench-load.md"
    data: dict[str, Any] = asdict(report)
    data["errors"] = report.errors
    json_path.write_text(json.dumps(data, indent=2))
    md_path.write_text(markdown_report(report))
    return json_path, md_path
