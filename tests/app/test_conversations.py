"""The conversation store on a real SQLite file: what is saved comes back whole."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from quarry.app.citations import Citation
from quarry.app.conversations import (
    FILE_NAME,
    SCHEMA_VERSION,
    Choices,
    Conversation,
    ConversationStore,
    ConversationStoreError,
    Message,
    Notice,
    title_from,
    to_markdown,
)
from quarry.app.retrieval import Passage
from quarry.app.session import describe

GUIDE = Passage(
    "c1", "Install it.\nThen run quarry up.", "guide/install.md", "Install", "Linux", None, 0, 0.61,
    doc_id="docs:guide/install.md",
)  # fmt: skip
MANUAL = Passage("c9", "Page three.", "manual.pdf", "", "", 3, 4, 0.4, doc_id="docs:manual.pdf")


def answered(question: str = "How do I install Quarry on Linux?") -> Conversation:
    """A conversation with everything a reply can carry, and a stopped and a failed one."""
    reply = Message(
        "assistant",
        "Install it, then run quarry up [1]. See the manual [2].",
        citations=[Citation(1, GUIDE), Citation(2, MANUAL)],
        passages=[GUIDE, MANUAL],
        notes=["Warning: this message looks like an attempt", "Left out 1 earlier turn."],
        finished=True,
        ttft_s=0.42,
        tokens_per_s=27.5,
        output_tokens=31,
        flagged={"c9"},
        unsupported={2},
        attributed=True,
        removed_citations=1,
        evidence={1: [(0, 11), (12, 31)], 2: [(0, 11)]},
        unsupported_sentences=[(33, 51)],
    )
    return Conversation(
        [
            Message("user", question),
            reply,
            Message("user", "And on a Mac?"),
            Message("assistant", "Half an ans"),  # stopped
            Message("user", "And on Windows?"),
            Message("assistant", notice=Notice("error", "The model server stopped answering.")),
        ],
        choices=Choices("docs", 7, "Technical", ["guide/", "manual.pdf"]),
    )


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    return ConversationStore.in_folder(tmp_path)


def test_a_conversation_comes_back_whole(store: ConversationStore, tmp_path: Path) -> None:
    conv = answered()
    store.create(conv)
    assert (tmp_path / FILE_NAME).is_file()
    back = ConversationStore.in_folder(tmp_path).load(conv.id)  # as after a restart
    assert back == conv
    assert back is not None and back.title == "How do I install Quarry on Linux?"
    reply = back.messages[1]
    assert reply.citations[0].passage == GUIDE and reply.evidence[1] == [(0, 11), (12, 31)]
    assert reply.flagged == {"c9"} and reply.unsupported == {2}
    assert reply.metrics == "first token 0.42 s · 27.5 tokens/s · 31 tokens"
    assert back.messages[3].stopped and back.messages[5].notice == conv.messages[5].notice
    assert back.history() == conv.history()


def test_saving_again_keeps_what_changed_and_nothing_empty_is_saved(
    store: ConversationStore,
) -> None:
    empty = Conversation()
    store.create(empty)
    assert store.list() == [] and store.load(empty.id) is None

    conv = Conversation([Message("user", "What ships on Tuesdays?"), Message("assistant")])
    store.create(conv)
    conv.messages[1].text, conv.messages[1].finished = "Granite [1].", True
    conv.choices = Choices("quarry", 3, "Factual")
    store.save(conv)
    assert store.load(conv.id) == conv

    store.delete(conv.id)
    store.save(conv)  # an answer that ends after its conversation was deleted
    assert store.load(conv.id) is None and store.list() == []


def test_the_list_is_newest_first_and_renames_stay(store: ConversationStore) -> None:
    first, second, third = (
        Conversation([Message("user", f"Question {n}?")]) for n in ("one", "two", "three")
    )
    for conv in (first, second, third):
        store.create(conv)
    assert [s.title for s in store.list()] == ["Question three?", "Question two?", "Question one?"]

    first.messages.append(Message("assistant", "Yes."))
    store.save(first)  # asked in again: it comes first
    assert [s.id for s in store.list()] == [first.id, third.id, second.id]

    assert store.rename(second.id, "  Shipping\n days ") == "Shipping days"
    assert store.rename(second.id, "   ") == "Shipping days"  # a blank title keeps the old
    store.save(second)
    loaded = store.load(second.id)
    assert loaded is not None and loaded.title == "Shipping days"

    store.delete(third.id)
    assert [s.title for s in store.list()] == ["Shipping days", "Question one?"]


def test_titles_are_the_first_question_on_one_line_and_trimmed() -> None:
    assert title_from("  What ships\n on Tuesdays? ") == "What ships on Tuesdays?"
    long = title_from("Which of the quarries ships granite, and which marble, on which days?")
    assert long == "Which of the quarries ships granite, and which marble, on…"
    assert title_from("x" * 80) == "x" * 60 + "…"
    assert title_from("   ") == "Untitled"


def test_a_file_from_a_newer_quarry_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConversationStoreError) as refused:
        ConversationStore(path)
    message = str(refused.value)
    assert f"conversation schema {SCHEMA_VERSION + 1}" in message and "Upgrade Quarry" in message
    assert describe(refused.value).text == message  # the page shows the sentence as it is
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    conn.close()


def test_a_new_file_is_versioned_and_in_wal_mode(store: ConversationStore) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    ConversationStore(store.path)  # opening it again migrates nothing


def test_an_unwritable_file_is_a_sentence(tmp_path: Path) -> None:
    folder = tmp_path / "is-a-folder.sqlite3"
    folder.mkdir()
    with pytest.raises(ConversationStoreError, match="Check that the data folder is writable"):
        ConversationStore(folder)


def test_sessions_saving_at_once_lose_nothing(store: ConversationStore) -> None:
    """Browser sessions share the file: each saves its own conversation from its thread."""
    conversations = [Conversation([Message("user", f"Question {n}?")]) for n in range(8)]

    def ask_and_answer(conv: Conversation) -> None:
        store.create(conv)
        for n in range(5):
            conv.messages.append(Message("assistant", f"answer {n}", finished=True))
            store.save(conv)

    threads = [threading.Thread(target=ask_and_answer, args=(c,)) for c in conversations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {s.id for s in store.list()} == {c.id for c in conversations}
    assert all(store.load(c.id) == c for c in conversations)


def test_the_markdown_export_has_answers_and_their_sources() -> None:
    conv = answered()
    conv.title = "Installing"
    text = to_markdown(conv)
    assert text.startswith("# Installing\n\n**You:** How do I install Quarry on Linux?\n")
    assert "Install it, then run quarry up [1]. See the manual [2]." in text
    assert (
        "Sources:\n\n[1] guide/install.md, Linux\n\n> Install it.\n> Then run quarry up.\n\n"
        "[2] manual.pdf, page 3\n\n> Page three.\n"
    ) in text
    assert "Half an ans\n\n_Stopped: the answer is incomplete._" in text
    assert "_The model server stopped answering._" in text
