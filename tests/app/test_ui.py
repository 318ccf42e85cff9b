"""The chat page through Streamlit's AppTest: real vLLM server, real Chroma, real embeddings.

The page reads its settings from QUARRY_* variables, as when `quarry chat` starts it, so each
test points it at the test server and a data folder with environment variables.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from streamlit.runtime.scriptrunner_utils.exceptions import StopException
from streamlit.testing.v1 import AppTest

from quarry.app import render, session
from quarry.app.citations import Citation
from quarry.app.conversations import Choices, ConversationStore, title_from
from quarry.app.retrieval import Retriever
from quarry.app.scope import Scope
from quarry.components import Components
from quarry.settings import QuarrySettings
from tests.conftest import RunningServer, free_port

pytestmark = pytest.mark.server

UI = Path(__file__).resolve().parents[2] / "app" / "ui.py"
KNOWN = "How do I change the port of the model server?"
UNKNOWN = "What is the boiling point of tungsten?"
SHORT_ANSWERS = "48"  # tokens: enough to see an answer, quick on two CPU cores


def point_page_at(
    monkeypatch: pytest.MonkeyPatch, port: int, data_dir: Path, collection: str
) -> None:
    monkeypatch.setenv("QUARRY_PROFILE", "cpu")
    monkeypatch.setenv("QUARRY_SERVER_PORT", str(port))
    monkeypatch.setenv("QUARRY_DATA_DIR", str(data_dir))
    monkeypatch.setenv("QUARRY_INGEST_COLLECTION", collection)
    monkeypatch.setenv("QUARRY_CHAT_MAX_TOKENS", SHORT_ANSWERS)


@pytest.fixture
def sample_page(
    monkeypatch: pytest.MonkeyPatch,
    vllm_server: RunningServer,
    sample_settings: QuarrySettings,
    sample_retriever: Retriever,  # the sample collection is ingested
) -> AppTest:
    port = vllm_server.settings.server.port
    point_page_at(monkeypatch, port, sample_settings.data_dir, "sample-docs")
    return open_page()


def open_page() -> AppTest:
    page = AppTest.from_file(str(UI), default_timeout=300)
    page.run()
    assert not page.exception
    return page


def ask(page: AppTest, question: str) -> AppTest:
    page.chat_input[0].set_value(question).run()
    assert not page.exception, page.exception
    return page


def texts(elements: object) -> list[str]:
    return [str(e.value) for e in elements]  # type: ignore[attr-defined]


def test_the_sidebar_shows_server_collection_top_k_and_presets(sample_page: AppTest) -> None:
    assert "Model server is up · SmolLM2-135M-Instruct" in texts(sample_page.sidebar.success)
    assert sample_page.selectbox(key="collection").value == "sample-docs"
    assert sample_page.slider[0].value == 3  # the cpu profile's top-k
    assert sample_page.radio[0].options == [
        "Factual (0.0)",
        "Technical (0.3)",
        "Conversational (0.7)",
        "Creative (1.0)",
    ]
    assert sample_page.radio[0].value == "Factual"
    assert any("documents" in c and "chunks" in c for c in texts(sample_page.sidebar.caption))


def test_a_question_gets_an_answer_with_sources_and_speed(sample_page: AppTest) -> None:
    ask(sample_page, KNOWN)
    user, assistant = sample_page.chat_message
    assert user.name == "user" and user.markdown[0].value == KNOWN
    assert assistant.name == "assistant" and assistant.markdown[0].value.strip()
    labels = [e.label for e in assistant.expander]
    assert any(label.split(",")[0].endswith("configuration.md") for label in labels), labels
    heading = texts(assistant.markdown)[1]
    assert heading in ("**Sources**", "**Passages searched** (the answer cites none)")
    metrics = texts(assistant.caption)[-1]
    assert metrics.startswith("first token ") and "tokens/s" in metrics
    assert not assistant.error
    assert "stop" not in [b.key for b in sample_page.button]  # shown only while it streams


def test_cited_sources_are_numbered_and_open_on_the_passage(
    sample_page: AppTest, sample_retriever: Retriever
) -> None:
    passage = sample_retriever.search(KNOWN, 1)[0]
    reply = session.Message(
        "assistant",
        "Set QUARRY_SERVER_PORT [1].",
        citations=[Citation(1, passage)],
        passages=[passage],
        finished=True,
        ttft_s=0.5,
        tokens_per_s=20.0,
        output_tokens=8,
    )
    sample_page.session_state["conversation"] = session.Conversation(
        [session.Message("user", KNOWN), reply]
    )
    sample_page.run()
    (expander,) = sample_page.chat_message[1].expander
    assert expander.label == f"[1] {passage.label}"
    assert expander.markdown[0].value == render.passage_markdown(passage.text)
    assert "first token 0.50 s · 20.0 tokens/s · 8 tokens" in texts(sample_page.caption)


def test_a_question_the_documents_cannot_answer_is_refused(sample_page: AppTest) -> None:
    ask(sample_page, UNKNOWN)
    assistant = sample_page.chat_message[1]
    assert "I couldn't find this in your documents" in assistant.markdown[0].value
    assert not assistant.expander and not assistant.error


def test_a_follow_up_is_asked_with_the_conversation(sample_page: AppTest) -> None:
    ask(ask(sample_page, KNOWN), "And the chat page?")
    assert len(sample_page.chat_message) == 4
    follow_up = sample_page.chat_message[3]
    assert "configuration.md" in {e.label.split(",")[0].split("] ")[-1] for e in follow_up.expander}
    assert not any("Searching for" in c for c in texts(follow_up.caption))  # no rewrite


def test_new_chat_clears_the_conversation_and_starts_from_the_defaults(
    sample_page: AppTest, sample_settings: QuarrySettings
) -> None:
    sample_page.slider(key="top_k").set_value(9).run()
    ask(sample_page, UNKNOWN)
    assert len(sample_page.chat_message) == 2
    saved = sample_page.query_params["c"]  # saved at its first question, kept in the URL
    stored = ConversationStore.in_folder(sample_settings.data_dir).load(saved)
    assert stored is not None and stored.choices == Choices("sample-docs", 9, "Factual")
    assert stored.messages == sample_page.session_state["conversation"].messages
    assert sample_page.button(key=f"open-{saved}").proto.type == "primary"  # listed, current

    sample_page.button[0].click().run()  # New chat
    assert not sample_page.chat_message and "c" not in sample_page.query_params
    assert sample_page.selectbox(key="collection").value == "sample-docs"
    assert sample_page.slider(key="top_k").value == 3
    assert sample_page.button(key=f"open-{saved}").proto.type == "tertiary"


def test_a_scope_that_covers_nothing_is_a_message_on_the_reply(
    vllm_server: RunningServer, sample_settings: QuarrySettings, sample_retriever: Retriever
) -> None:
    settings = sample_settings.model_copy(update={"server": vllm_server.settings.server})
    chain = Components(settings, embedders=[sample_retriever.embedder]).chain("sample-docs")
    conv = session.Conversation()
    reply = session.answer(
        conv, KNOWN, lambda: chain, print, print, scope=Scope.of(["contracts/2024/"])
    )
    assert reply.notice is not None and reply.notice.kind == "error"
    assert reply.notice.text.startswith(
        'No document of the collection "sample-docs" is under contracts/2024/.'
    )
    assert not reply.text and not reply.passages


def test_a_question_too_long_for_the_model_is_a_message(sample_page: AppTest) -> None:
    ask(sample_page, "Why is the port of the model server 8000? " * 300)
    (error,) = sample_page.chat_message[1].error
    assert "The question needs" in error.value and "shorter question" in error.value


def test_the_server_being_down_is_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    point_page_at(monkeypatch, free_port(), tmp_path, "notes")
    page = open_page()
    assert "No model server answers" in texts(page.sidebar.error)[0]
    ask(page, KNOWN)
    (error,) = page.chat_message[1].error
    assert "No model server answers" in error.value and "quarry serve" in error.value


def test_a_collection_that_does_not_exist_yet_is_explained(
    monkeypatch: pytest.MonkeyPatch, vllm_server: RunningServer, tmp_path: Path
) -> None:
    point_page_at(monkeypatch, vllm_server.settings.server.port, tmp_path, "not-there")
    page = open_page()
    assert "Not created yet: add documents below." in texts(page.sidebar.caption)
    ask(page, KNOWN)
    (info,) = page.chat_message[1].info
    assert 'The collection "not-there" does not exist yet' in info.value


def test_an_upload_is_ingested_into_the_current_collection(
    monkeypatch: pytest.MonkeyPatch, vllm_server: RunningServer, tmp_path: Path
) -> None:
    point_page_at(monkeypatch, vllm_server.settings.server.port, tmp_path, "notes")
    page = open_page()
    uploader = page.file_uploader[0]
    assert set(uploader.allowed_type) >= {".md", ".pdf", ".docx", ".html"}
    uploader.upload("../../escape.md", b"# Granite\n\nThe quarry ships granite on Tuesdays.\n")
    page.run()  # a browser reruns the page when a file arrives; that enables the button
    page.button(key="add").click().run()
    assert not page.exception
    assert texts(page.sidebar.success)[-1].startswith("notes: 1 added")
    assert "1 documents, 1 chunks" in texts(page.sidebar.caption)
    stored = tmp_path / "uploads" / "notes" / "escape.md"
    assert stored.read_text().startswith("# Granite")
    assert sorted(p.name for p in tmp_path.rglob("escape.md")) == ["escape.md"]
    assert not page.file_uploader[0].value  # a fresh upload box for the next files

    ask(page, "On which day is granite shipped?")
    labels = [e.label for e in page.chat_message[1].expander]
    assert labels and "escape.md" in labels[0], labels


def test_a_stopped_answer_keeps_its_text_and_is_marked(
    vllm_server: RunningServer,
    sample_settings: QuarrySettings,
    sample_retriever: Retriever,
    tmp_path: Path,
) -> None:
    """Stop, like any click during a run, interrupts the script inside an `st` call with a
    BaseException; the partial answer must survive into the conversation, and its file."""
    settings = sample_settings.model_copy(update={"server": vllm_server.settings.server})
    chain = Components(settings, embedders=[sample_retriever.embedder]).chain("sample-docs")
    store = ConversationStore.in_folder(tmp_path)
    conv = session.Conversation()
    seen: list[str] = []
    saved_when_asked: list[session.Conversation | None] = []

    def stop_after_a_few_tokens(text: str) -> None:
        if not seen:
            saved_when_asked.append(store.load(conv.id))
        seen.append(text)
        if len(seen) == 5:
            raise StopException()

    with pytest.raises(StopException):
        session.answer(
            conv, KNOWN, lambda: chain, stop_after_a_few_tokens, lambda _: None, store=store
        )
    (asked,) = saved_when_asked  # the question and the empty reply, before the first token
    assert asked is not None and [m.text for m in asked.messages] == [KNOWN, ""]
    assert store.load(conv.id) == conv  # and the partial reply, though Stop raised
    user, reply = conv.messages
    page = AppTest.from_file(str(UI), default_timeout=60)
    page.session_state["conversation"] = conv
    page.run()
    assert "Stopped: the answer is incomplete." in texts(page.chat_message[1].caption)[0]
    assert user.text == KNOWN
    assert reply.stopped and not reply.finished and reply.text == seen[-1]
    assert conv.history() == []  # half an answer is not replayed to the model


def test_a_saved_conversation_opens_with_its_choices_and_can_be_renamed_and_deleted(
    monkeypatch: pytest.MonkeyPatch, sample_settings: QuarrySettings, sample_retriever: Retriever
) -> None:
    """What a reload or a restart does: a new session opens the conversation the URL names
    from the store. No model is needed to show a saved answer."""
    point_page_at(monkeypatch, free_port(), sample_settings.data_dir, "sample-docs")
    passage = sample_retriever.search(KNOWN, 1)[0]
    conv = session.Conversation(
        [
            session.Message("user", KNOWN),
            session.Message(
                "assistant",
                "Set QUARRY_SERVER_PORT [1].",
                citations=[Citation(1, passage)],
                passages=[passage],
                notes=["Left out 1 earlier turn to fit the model."],
                finished=True,
                ttft_s=0.5,
                tokens_per_s=20.0,
                output_tokens=8,
                evidence={1: [(0, 10)]},
            ),
        ],
        choices=Choices("sample-docs", 5, "Technical", [passage.source]),
    )
    store = ConversationStore.in_folder(sample_settings.data_dir)
    store.create(conv)

    page = AppTest.from_file(str(UI), default_timeout=120)
    page.query_params["c"] = conv.id
    page.run()
    assert not page.exception
    user, reply = page.chat_message
    assert user.markdown[0].value == KNOWN and "QUARRY_SERVER_PORT" in reply.markdown[0].value
    assert reply.expander[0].label == f"[1] {passage.label}"
    assert "Left out 1 earlier turn to fit the model." in texts(reply.caption)
    assert "first token 0.50 s · 20.0 tokens/s · 8 tokens" in texts(reply.caption)
    assert_choices(page, 5, "Technical", [passage.source])
    caption = f"Searching “sample-docs” · only {passage.source} · top-k 5 · technical"
    assert caption in texts(page.main.caption)
    assert page.button(key=f"open-{conv.id}").label == title_from(KNOWN)
    (export,) = page.get("download_button")
    assert export.proto.label == "Export as Markdown"

    page.button[0].click().run()  # New chat: back to the configured defaults
    assert not page.chat_message
    assert_choices(page, 3, "Factual", [])
    page.button(key=f"open-{conv.id}").click().run()  # and back, from the sidebar
    assert len(page.chat_message) == 2 and page.query_params["c"] == conv.id
    assert_choices(page, 5, "Technical", [passage.source])

    page.text_input(key=f"title-{conv.id}").input("  Server port ").run()
    assert page.button(key=f"open-{conv.id}").label == "Server port"
    reopened = store.load(conv.id)
    assert reopened is not None and reopened.title == "Server port"

    page.button(key="delete").click().run()
    assert not page.exception and not page.chat_message
    assert store.load(conv.id) is None
    assert f"open-{conv.id}" not in [b.key for b in page.button]


def test_a_conversations_file_from_a_newer_quarry_is_a_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with sqlite3.connect(tmp_path / "conversations.sqlite3") as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    point_page_at(monkeypatch, free_port(), tmp_path, "notes")
    page = open_page()
    problems = texts(page.sidebar.error)
    assert any("written by a newer Quarry" in line for line in problems), problems
    ask(page, KNOWN)  # the page still answers (here: that no server answers), unsaved
    assert len(page.chat_message) == 2 and "c" not in page.query_params


def assert_choices(page: AppTest, top_k: int, preset: str, scope: list[str]) -> None:
    assert page.selectbox(key="collection").value == "sample-docs"
    assert page.slider(key="top_k").value == top_k
    assert page.radio(key="preset").value == preset
    assert page.multiselect(key="scope").value == scope


def test_settings_errors_are_shown_on_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARRY_RETRIEVAL_TOP_K", "many")
    page = AppTest.from_file(str(UI), default_timeout=60).run()
    assert not page.exception
    assert "retrieval.top_k" in page.error[0].value
