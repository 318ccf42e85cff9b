"""The model server killed after, during and before an answer on the chat page, in a real
browser; and the page opened while the Chroma server is down.

What the person sees is one sentence where the answer would be, never a traceback; the page
keeps working, and the same question is answered once the server is back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from quarry.app.errors import SERVER_DOWN
from quarry.eval.server_metrics import free_port
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.settings import load_settings
from tests.conftest import DOCS, server_env
from tests.faults.test_model_server_faults import ModelServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

browser_tests = pytest.importorskip("tests.app.test_browser")
sync_api = browser_tests.sync_api
pytestmark = pytest.mark.server

QUESTION = "How do I change the port of the model server?"
ANSWER_TIMEOUT_MS = browser_tests.ANSWER_TIMEOUT_MS


def _open(browser: Browser, url: str) -> tuple[Page, Locator]:
    """The page in a fresh tab, and its sidebar."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    return page, page.get_by_test_id("stSidebar")


def _ask(page: Page, question: str, number: int) -> Locator:
    """Type a question; the reply's locator (the `number`th answer on the page, from 0)."""
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")
    return page.get_by_test_id("stChatMessage").nth(2 * number + 1)


def test_the_model_server_killed_after_during_and_before_an_answer_on_the_page(
    tmp_path: Path, embedder: Embedder
) -> None:
    expect = sync_api.expect
    data = tmp_path / "data"
    settings = load_settings(profile="cpu", data_dir=data, ingest={"collection": "quarry-docs"})
    assert not ingest([DOCS], settings, embedder=embedder).failed
    vllm_port = free_port()
    server = ModelServer(server_env(data, vllm_port), vllm_port)
    env = {
        "QUARRY_PROFILE": "cpu",
        "QUARRY_SERVER_PORT": str(vllm_port),
        "QUARRY_DATA_DIR": str(data),
        "QUARRY_INGEST_COLLECTION": "quarry-docs",
        "QUARRY_CHAT_MAX_TOKENS": "96",  # long enough to be killed halfway
    }
    server.start()
    try:
        with (
            browser_tests.running_page(env, tmp_path / "streamlit.log") as url,
            browser_tests.chromium() as browser,
        ):
            page, sidebar = _open(browser, url)
            expect(sidebar.get_by_text("Model server is up")).to_be_visible(timeout=60_000)

            after = _ask(page, QUESTION, 0)  # a whole answer before anything breaks
            expect(after.get_by_text("tokens/s").first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)

            during = _ask(page, "Which file formats can I ingest?", 1)
            expect(during.get_by_text("▌").first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
            server.kill()
            alert = during.get_by_role("alert")
            expect(alert).to_be_visible(timeout=60_000)
            assert " ".join(alert.inner_text().split()) == SERVER_DOWN.replace("`", "")
            # The first answer stays (while the page reruns, Streamlit may briefly show its
            # old copy of a message beside the new one).
            expect(after.get_by_text("tokens/s").first).to_be_visible()

            time.sleep(6)  # the sidebar's server status is read at most every 5 s
            before = _ask(page, QUESTION, 2)
            expect(before.get_by_role("alert")).to_be_visible(timeout=60_000)
            told = " ".join(before.get_by_role("alert").inner_text().split())
            assert told == SERVER_DOWN.replace("`", "") or told.startswith(
                "No model server answers at"
            ), told
            expect(sidebar.get_by_text("No model server answers at")).to_be_visible()

            server.start()
            time.sleep(6)
            again = _ask(page, QUESTION, 3)
            expect(again.get_by_text("tokens/s").first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
            expect(page.get_by_text("Traceback")).to_have_count(0)
            expect(page.get_by_test_id("stException")).to_have_count(0)
    finally:
        server.kill()


def test_the_page_opened_while_the_chroma_server_is_down_says_so(tmp_path: Path) -> None:
    expect = sync_api.expect
    env = {
        "QUARRY_PROFILE": "cpu",
        "QUARRY_DATA_DIR": str(tmp_path / "data"),
        "QUARRY_CHROMA_HOST": "127.0.0.1",
        "QUARRY_CHROMA_PORT": str(free_port()),  # nothing listens there
        "QUARRY_SERVER_PORT": str(free_port()),
    }
    with (
        browser_tests.running_page(env, tmp_path / "streamlit.log") as url,
        browser_tests.chromium() as browser,
    ):
        page, sidebar = _open(browser, url)
        expect(sidebar.get_by_text("No Chroma server answers at")).to_be_visible(timeout=60_000)
        expect(sidebar.get_by_text("Something went wrong")).to_have_count(0)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        expect(page.get_by_text("Traceback")).to_have_count(0)
