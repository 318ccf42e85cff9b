"""The chat page under load: browser sessions asking at once, each answer read to its end.

A Streamlit page is started on 127.0.0.1 (as `quarry chat` starts it) and real Chromium
sessions, each its own browser context (its own Streamlit session), open it. All of them
ask at once; an answer is complete when its speed line ("tokens/s") is shown. One session
asking alone comes first, the baseline. Per run: sessions, answers complete, the time from
pressing Enter to the complete answer and the first-token time the page itself shows,
p50 and p99.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from quarry.app.launch import streamlit_command
from quarry.eval.metrics import percentile
from quarry.eval.server_metrics import free_port
from quarry.serve.process import ManagedProcess, ProcessStartError
from quarry.settings import QuarrySettings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUESTIONS = [
    "How do I change the port of the model server?",
    "Which file formats can I ingest?",
    "How do I stop an answer?",
    "What do the temperature presets do?",
]
_FIRST_TOKEN = re.compile(r"first token (\d+(?:\.\d+)?) s")


class PageLoadUnavailableError(RuntimeError):
    """No browser to drive here; the message says what to install."""


@dataclass
class PageRun:
    sessions: int
    complete: int
    answer_p50_s: float
    answer_p99_s: float
    shown_ttft_p50_s: float
    shown_ttft_p99_s: float
    first_problem: str = ""


@contextmanager
def running_page(settings: QuarrySettings, env: dict[str, str], log: Path) -> Iterator[str]:
    """The chat page on a free port of 127.0.0.1, its URL while it runs. A page that exits
    while starting is started once more on another port (two runs picking one free port)."""
    for attempt in (1, 2):
        port = free_port()
        chat = settings.chat.model_copy(update={"ui_host": "127.0.0.1", "ui_port": port})
        command = streamlit_command(settings.model_copy(update={"chat": chat}))
        url = f"http://127.0.0.1:{port}"
        page = ManagedProcess(
            command, log, env=env, name="streamlit", health_url=f"{url}/_stcore/health"
        ).start()
        try:
            page.wait_healthy(120)
        except ProcessStartError:
            page.stop()
            if attempt == 2:
                raise
            continue
        try:
            yield url
        finally:
            page.stop()
        return


@contextmanager
def chromium() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise PageLoadUnavailableError(
            "Playwright is missing: install Quarry's dev extras (pip install -e '.[dev]')."
        ) from None
    if not CHROMIUM.is_file():
        raise PageLoadUnavailableError(f"{CHROMIUM} is missing: install the chromium package.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def ask_at_once(browser: Browser, url: str, sessions: int, timeout_s: float) -> PageRun:
    """`sessions` sessions open the page, all press Enter, and every answer is waited for."""
    contexts = [
        browser.new_context(viewport={"width": 1280, "height": 1000}) for _ in range(sessions)
    ]
    try:
        pages: list[Page] = []
        for context in contexts:
            page = context.new_page()
            page.goto(url)
            page.get_by_test_id("stSidebar").get_by_text("Model server is up").wait_for(
                timeout=120_000
            )
            pages.append(page)
        asked: dict[int, float] = {}
        for number, page in enumerate(pages):
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill(QUESTIONS[number % len(QUESTIONS)])
            box.press("Enter")
            asked[number] = time.monotonic()
        return _wait_for_answers(pages, asked, timeout_s)
    finally:
        for context in contexts:
            context.close()


def _wait_for_answers(pages: list[Page], asked: dict[int, float], timeout_s: float) -> PageRun:
    done: dict[int, float] = {}
    shown: list[float] = []
    problem = ""
    deadline = time.monotonic() + timeout_s
    while len(done) < len(pages) and time.monotonic() < deadline:
        for number, page in enumerate(pages):
            if number in done:
                continue
            reply = page.get_by_test_id("stChatMessage").nth(1)
            if reply.count() and reply.get_by_text("tokens/s").count():
                done[number] = time.monotonic() - asked[number]
                found = _FIRST_TOKEN.search(reply.inner_text())
                if found:
                    shown.append(float(found.group(1)))
        time.sleep(0.25)
    for number, page in enumerate(pages):
        if number not in done and not problem:
            reply = page.get_by_test_id("stChatMessage").nth(1)
            text = reply.inner_text() if reply.count() else "no answer shown"
            problem = f"session {number + 1}: {' '.join(text.split())[:200]}"
    times = list(done.values())
    return PageRun(
        sessions=len(pages),
        complete=len(done),
        answer_p50_s=percentile(times, 50),
        answer_p99_s=percentile(times, 99),
        shown_ttft_p50_s=percentile(shown, 50),
        shown_ttft_p99_s=percentile(shown, 99),
        first_problem=problem,
    )


def run_page_load(
    settings: QuarrySettings,
    env: dict[str, str],
    *,
    sessions: int = 8,
    timeout_s: float = 600,
    log_dir: Path = Path("reports"),
    progress: Callable[[str], None] = lambda _: None,
) -> list[PageRun]:
    """One session alone, then `sessions` at once, on one page process."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with chromium() as browser, running_page(settings, env, log_dir / "bench-load-page.log") as url:
        progress("One browser session asking alone...")
        runs = [ask_at_once(browser, url, 1, timeout_s)]
        progress(f"{sessions} browser sessions asking at once...")
        runs.append(ask_at_once(browser, url, sessions, timeout_s))
    return runs


def markdown_report(runs: list[PageRun]) -> str:
    lines = [
        "| browser sessions | answers complete | answer p50 s | answer p99 s | "
        "first token shown p50 s | p99 s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.sessions} | {run.complete} of {run.sessions} | {run.answer_p50_s:.1f} | "
            f"{run.answer_p99_s:.1f} | {run.shown_ttft_p50_s:.2f} | {run.shown_ttft_p99_s:.2f} |"
        )
    lines += [f"- {run.first_problem}" for run in runs if run.first_problem]
    return "\n".join(lines) + "\n"
