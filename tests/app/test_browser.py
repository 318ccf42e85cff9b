"""The chat page as a person sees it: `streamlit run` in a subprocess, headless Chromium.

Uses Debian's `chromium` package (not a browser downloaded by Playwright), so the test runs
offline. The screenshot is kept in test-artifacts/ for a person (or CI) to look at.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

import pytest

from quarry.app.conversations import title_from
from quarry.app.retrieval import Retriever
from quarry.app.scope import Scope
from quarry.components import Components
from quarry.eval.page_load import CHROMIUM, chromium
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.serve.process import ManagedProcess
from quarry.settings import QuarrySettings, load_settings
from tests.conftest import RunningServer, free_port, stop_cleanly

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.server

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
START_TIMEOUT_S = 120
ANSWER_TIMEOUT_MS = 240_000


def page_env(server: RunningServer, data_dir: Path, collection: str) -> dict[str, str]:
    return {
        "QUARRY_PROFILE": "cpu",
        "QUARRY_SERVER_PORT": str(server.settings.server.port),
        "QUARRY_DATA_DIR": str(data_dir),
        "QUARRY_INGEST_COLLECTION": collection,
        "QUARRY_CHAT_MAX_TOKENS": "96",  # long enough to watch it stream and to stop it
    }


@contextmanager
def running_page(env: dict[str, str], log: Path) -> Iterator[str]:
    """`streamlit run` the page, as `quarry chat` does; its URL while it runs."""
    port = free_port()
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
        log,
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


@pytest.fixture
def chat_url(
    vllm_server: RunningServer,
    sample_settings: QuarrySettings,
    sample_retriever: Retriever,  # the sample collection is ingested
    tmp_path: Path,
) -> Iterator[str]:
    env = page_env(vllm_server, sample_settings.data_dir, "sample-docs")
    with running_page(env, tmp_path / "streamlit.log") as url:
        yield url


def test_a_person_asks_and_sees_a_streamed_cited_answer(chat_url: str) -> None:
    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
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
        expect(answer.get_by_text("tokens/s").first).to_be_visible()
        words = answer.get_by_test_id("stMarkdown").first.inner_text()
        assert "--port" in words or "QUARRY_SERVER_PORT" in words, words  # right, cited:
        assert re.search(r"\[\d+\]", words), words  # which number: the ranking's
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
        expect(second.get_by_text("▌").first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        second.get_by_role("button", name="Stop").click()
        expect(second.get_by_text("Stopped: the answer is incomplete.")).to_be_visible(
            timeout=30_000
        )
        assert second.get_by_test_id("stMarkdown").first.inner_text().strip()
        page.screenshot(path=str(ARTIFACTS / "chat-stopped.png"), full_page=True)
        expect(page.get_by_test_id("stException")).to_have_count(0)


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


QUARRIES = {
    "north/granite.md": "# North quarry\n\nThe north quarry ships granite blocks to the harbour "
    "every Tuesday morning.\n",
    "north/saws.md": "# Saws\n\nThe north quarry cuts its granite with diamond wire saws.\n",
    "south/marble.md": "# South quarry\n\nThe south quarry ships white marble to the harbour "
    "every Friday evening.\n",
}
SOUTH_QUESTION = "On which day does the south quarry ship marble to the harbour?"


@pytest.fixture
def quarries(tmp_path: Path, embedder: Embedder) -> QuarrySettings:
    """A collection of two folders, north/ and south/, whose one fact each the other lacks."""
    for source, text in QUARRIES.items():
        (tmp_path / "quarries" / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "quarries" / source).write_text(text)
    settings = load_settings(
        profile="cpu", data_dir=tmp_path / "data", ingest={"collection": "quarries"}
    )
    report = ingest([tmp_path / "quarries"], settings, embedder=embedder)
    assert not report.failed, report
    return settings


def test_a_conversation_and_its_scope_survive_a_reload_and_a_restart(
    vllm_server: RunningServer, quarries: QuarrySettings, embedder: Embedder, tmp_path: Path
) -> None:
    """One answer, asked with the scope north/ about a fact only south/ holds: no source from
    south/ is shown, and the reload and the restarted page bring back the same answer."""
    retriever = Components(quarries, embedders=[embedder]).retriever("quarries")
    assert retriever.search(SOUTH_QUESTION, 1)[0].source == "south/marble.md"  # unscoped
    scoped = retriever.within(Scope.of(["north/"])).search(SOUTH_QUESTION, 3)
    assert scoped and {p.source for p in scoped} <= {"north/granite.md", "north/saws.md"}

    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    env = page_env(vllm_server, quarries.data_dir, "quarries")
    with running_page(env, tmp_path / "first.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text("Model server is up")).to_be_visible(timeout=60_000)
        sidebar.get_by_test_id("stMultiSelect").click()
        page.get_by_role("option", name="north/", exact=True).click()
        page.keyboard.press("Escape")
        caption = "Searching “quarries” · only north/ · top-k 3 · factual"
        expect(page.get_by_text(caption)).to_be_visible(timeout=30_000)

        box = page.get_by_test_id("stChatInputTextArea")
        box.fill(SOUTH_QUESTION)
        box.press("Enter")
        # Listed in the sidebar, current, once the answer is done and saved.
        current = sidebar.get_by_test_id("stBaseButton-primary")
        expect(current.filter(has_text=title_from(SOUTH_QUESTION))).to_be_visible(
            timeout=ANSWER_TIMEOUT_MS
        )
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(answer.get_by_text("tokens/s").first).to_be_visible()
        sources = answer.get_by_test_id("stExpander").locator("summary")
        labels = sources.all_inner_texts()
        assert labels and all("north/" in label for label in labels), labels
        assert not any("south/" in label for label in labels), labels
        shown = conversation_text(page)
        opened = parse_qs(urlparse(page.url).query)["c"][0]  # the URL names it

        page.reload()
        expect(page.get_by_text(caption)).to_be_visible(timeout=60_000)
        assert conversation_text(page) == shown
        page.screenshot(path=str(ARTIFACTS / "chat-reloaded.png"), full_page=True)

    with running_page(env, tmp_path / "second.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{url}/?c={opened}")
        expect(page.get_by_text(caption)).to_be_visible(timeout=60_000)
        assert conversation_text(page) == shown  # question, answer, sources, speed line
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_test_id("stMultiSelect").get_by_text("north/")).to_be_visible()
        listed = sidebar.get_by_test_id("stBaseButton-primary")
        expect(listed.filter(has_text=title_from(SOUTH_QUESTION))).to_be_visible()

        sidebar.get_by_role("button", name="New chat").click()
        expect(page.get_by_text("Searching “quarries” · top-k 3 · factual")).to_be_visible()
        expect(page.get_by_test_id("stChatMessage")).to_have_count(0)
        sidebar.get_by_role("button", name=title_from(SOUTH_QUESTION)).click()
        expect(page.get_by_text(caption)).to_be_visible()
        assert conversation_text(page) == shown
        assert parse_qs(urlparse(page.url).query)["c"] == [opened]
        expect(page.get_by_test_id("stException")).to_have_count(0)


def conversation_text(page: Page) -> list[str]:
    """What the chat shows, message by message, once it has been drawn."""
    messages = page.get_by_test_id("stChatMessage")
    sync_api.expect(messages.nth(1).get_by_text("tokens/s").first).to_be_visible(timeout=60_000)
    return [text.strip() for text in messages.all_inner_texts()]
