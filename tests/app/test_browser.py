"""The chat page as a person sees it: `streamlit run` in a subprocess, headless Chromium.

Uses Debian's `chromium` package (not a browser downloaded by Playwright), so the test runs
offline. The screenshot is kept in test-artifacts/ for a person (or CI) to look at.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from quarry.app.retrieval import Retriever
from quarry.serve.process import ManagedProcess
from quarry.settings import QuarrySettings
from tests.conftest import RunningServer, free_port, stop_cleanly

if TYPE_CHECKING:
    from playwright.sync_api import Locator

pytestmark = pytest.mark.server

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium package", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is missing: pip install playwright"
)

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "app" / "ui.py"
ARTIFACTS = ROOT / "test-artifacts"
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
START_TIMEOUT_S = 120
ANSWER_TIMEOUT_MS = 240_000


@pytest.fixture
def chat_url(
    vllm_server: RunningServer,
    sample_settings: QuarrySettings,
    sample_retriever: Retriever,  # the sample collection is ingested
    tmp_path: Path,
) -> Iterator[str]:
    port = free_port()
    env = {
        "QUARRY_PROFILE": "cpu",
        "QUARRY_SERVER_PORT": str(vllm_server.settings.server.port),
        "QUARRY_DATA_DIR": str(sample_settings.data_dir),
        "QUARRY_INGEST_COLLECTION": "sample-docs",
        "QUARRY_CHAT_MAX_TOKENS": "96",  # long enough to watch it stream and to stop it
    }
    command = [
        sys.executable, "-m", "streamlit", "run", str(UI),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    streamlit = ManagedProcess(
        command,
        tmp_path / "streamlit.log",
        env=env,
        cwd=ROOT,  # from the root, as `make run`: .streamlit/config.toml applies
        name="streamlit",
        health_url=f"{url}/_stcore/health",
    ).start()
    streamlit.wait_healthy(START_TIMEOUT_S)
    try:
        yield url
    finally:
        stop_cleanly(streamlit, port, stop_signal=signal.SIGTERM, timeout_s=30)
    assert "Traceback" not in streamlit.log_text(), streamlit.log_text()


def test_a_person_asks_and_sees_a_streamed_cited_answer(chat_url: str) -> None:
    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(chat_url)
            sidebar = page.get_by_test_id("stSidebar")
            expect(sidebar.get_by_text("Model server is up")).to_be_visible(timeout=60_000)

            box = page.get_by_test_id("stChatInputTextArea")
            box.fill("How do I change the port of the model server?")
            box.press("Enter")
            answer = page.get_by_test_id("stChatMessage").nth(1)
            stop = answer.get_by_role("button", name="Stop")
            expect(stop).to_be_visible(timeout=60_000)
            partial = watch_stream(answer, stop)
            assert len(partial) >= 2, f"the answer did not stream: {partial}"

            source = answer.get_by_test_id("stExpander").filter(has_text="configuration.md")
            expect(source.first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
            expect(answer.get_by_text("tokens/s")).to_be_visible()
            words = answer.get_by_test_id("stMarkdown").first.inner_text()
            assert "--port" in words or "QUARRY_SERVER_PORT" in words, words  # right, cited:
            assert "[1]" in words, words
            details = source.first.get_by_test_id("stExpanderDetails")
            if not details.is_visible():  # the first source opens by itself when it has evidence
                source.first.locator("summary").click()
            expect(details).to_be_visible()
            # The sentence of the passage that supports the answer is highlighted in it.
            highlight = details.locator(".stMarkdownColoredBackground")
            expect(highlight.first).to_be_visible()
            assert "port" in highlight.first.inner_text()
            page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)

            box.fill("How do I stop Quarry?")
            box.press("Enter")
            second = page.get_by_test_id("stChatMessage").nth(3)
            expect(second.get_by_text("▌")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
            second.get_by_role("button", name="Stop").click()
            expect(second.get_by_text("Stopped: the answer is incomplete.")).to_be_visible(
                timeout=30_000
            )
            assert second.get_by_test_id("stMarkdown").first.inner_text().strip()
            page.screenshot(path=str(ARTIFACTS / "chat-stopped.png"), full_page=True)
            expect(page.get_by_test_id("stException")).to_have_count(0)
        finally:
            browser.close()


def watch_stream(answer: Locator, stop: Locator) -> list[str]:
    """The distinct texts the answer showed while the Stop button was up: more than one means
    the tokens arrived one by one rather than all at the end."""
    seen: list[str] = []
    deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
    while stop.is_visible() and time.monotonic() < deadline:
        text = answer.inner_text(timeout=5_000)
        if "▌" in text and (not seen or text != seen[-1]):
            seen.append(text)
        time.sleep(0.1)
    return seen
