"""Conversations that last: each one is saved as it goes in SQLite under the data folder, so
that a page reload or a restart brings it back with its sources, notes and speeds.

Several browser sessions, and the threads Streamlit runs them in, use the same file: each
operation opens its own short-lived connection, in WAL mode (a reader never waits for a
writer) with a busy timeout (writers wait for each other rather than fail). Messages are
stored as JSON that pydantic writes from the dataclasses themselves, so a new field needs no
serialisation code. The schema is versioned with `PRAGMA user_version`; a file written by a
newer Quarry is refused, never rewritten.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from quarry.app.chain import Turn
from quarry.app.citations import Citation
from quarry.app.retrieval import Passage
from quarry.ingest.collection import StoreError

FILE_NAME = "conversations.sqlite3"
BUSY_TIMEOUT_S = 10.0
TITLE_CHARS = 60

# Each entry brings a file from the version before it to its own; the last is the code's.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            choices TEXT NOT NULL,
            messages TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations (updated)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


@dataclass(frozen=True)
class Notice:
    """A message for the page: `error` is something to fix, `info` a state to know about."""

    kind: Literal["error", "info"]
    text: str


@dataclass
class Message:
    role: Literal["user", "assistant"]
    text: str = ""
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    finished: bool = False
    notice: Notice | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    output_tokens: int = 0
    flagged: set[str] = field(default_factory=set)  # chunk ids that carry instructions
    unsupported: set[int] = field(default_factory=set)  # citations the passage doesn't back
    attributed: bool = False  # some markers were added by Quarry, not written by the model
    removed_citations: int = 0  # markers the model wrote that its passage does not back
    # Sentences of each cited passage that support the answer, and sentences of the answer
    # that no passage supports: (start, end) offsets into the passage's or the answer's text.
    evidence: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    unsupported_sentences: list[tuple[int, int]] = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        """An answer that neither finished nor failed was cut short (Stop, or another click)."""
        return self.role == "assistant" and not self.finished and self.notice is None

    @property
    def metrics(self) -> str:
        """The speed line under an answer; empty when nothing was generated."""
        parts = []
        if self.ttft_s is not None:
            parts.append(f"first token {self.ttft_s:.2f} s")
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:.1f} tokens/s")
        if self.output_tokens:
            parts.append(f"{self.output_tokens} tokens")
        return " · ".join(parts)


@dataclass
class Choices:
    """The sidebar's choices a conversation was asked with; opening it restores them."""

    collection: str
    top_k: int
    preset: str
    scope: list[str] = field(default_factory=list)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Conversation:
    messages: list[Message] = field(default_factory=list)
    id: str = field(default_factory=new_id)  # known before it is saved, for the page's URL
    title: str = ""  # its first question, trimmed, until it is renamed
    choices: Choices | None = None

    def history(self) -> list[Turn]:
        """Finished question-and-answer pairs, oldest first, for the chain's memory.

        Stopped and failed answers are left out: the model should not build on half a reply.
        """
        turns: list[Turn] = []
        for question, reply in zip(self.messages, self.messages[1:], strict=False):
            if question.role == "user" and reply.role == "assistant" and reply.finished:
                turns += [Turn("user", question.text), Turn("assistant", reply.text)]
        return turns


@dataclass(frozen=True)
class SavedConversation:
    """What the sidebar lists of a saved conversation."""

    id: str
    title: str
    updated: float


class ConversationStoreError(StoreError):
    """The conversations file cannot be used; the message names it and says what to do."""


def title_from(question: str) -> str:
    """A sidebar title: the question on one line, cut at a word near TITLE_CHARS."""
    words = " ".join(question.split())
    if len(words) <= TITLE_CHARS:
        return words or "Untitled"
    cut = words[:TITLE_CHARS].rsplit(" ", 1)[0] or words[:TITLE_CHARS]
    return cut.rstrip(" ,.;:") + "…"


_MESSAGES = TypeAdapter(list[Message])
_CHOICES = TypeAdapter(Choices | None)


class ConversationStore:
    """The saved conversations of one data folder (`data_dir/conversations.sqlite3`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saving = threading.Lock()  # a snapshot taken later is written later
        path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    @classmethod
    def in_folder(cls, data_dir: Path) -> ConversationStore:
        return cls(data_dir / FILE_NAME)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per operation, in autocommit mode: each statement is its own
        transaction, so no connection outlives the call that needed it."""
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            yield conn
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    def _error(self, exc: sqlite3.Error) -> ConversationStoreError:
        return ConversationStoreError(
            f"Conversations cannot be read or saved in {self.path} ({exc}). Check that the "
            "data folder is writable and has space."
        )

    def _migrate(self) -> None:
        with self._connect() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConversationStoreError(
                    f"{self.path} was written by a newer Quarry (conversation schema "
                    f"{version}; this one reads up to {SCHEMA_VERSION}). Upgrade Quarry, or "
                    "move the file away to start without saved conversations."
                )
            conn.execute("PRAGMA journal_mode=WAL")
            if version == SCHEMA_VERSION:
                return
            conn.execute("BEGIN IMMEDIATE")  # another process may be migrating it now
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for steps in _MIGRATIONS[version:]:
                for statement in steps:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")

    def create(self, conv: Conversation) -> None:
        """Save a conversation for the first time, titled from its first question. Nothing
        empty is saved: a conversation without messages is left out."""
        if not conv.messages:
            return
        conv.title = conv.title or title_from(conv.messages[0].text)
        with self._saving, self._connect() as conn:
            now = time.time()
            conn.execute(
                "INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?, ?, ?)",
                (conv.id, conv.title, now, now, *self._dump(conv)),
            )

    def save(self, conv: Conversation) -> None:
        """Save the messages and choices of a conversation already created; one deleted
        meanwhile (a Delete click while it was answering) stays deleted."""
        with self._saving, self._connect() as conn:
            conn.execute(
                "UPDATE conversations SET updated = ?, choices = ?, messages = ? WHERE id = ?",
                (time.time(), *self._dump(conv), conv.id),
            )

    @staticmethod
    def _dump(conv: Conversation) -> tuple[str, str]:
        return (
            _CHOICES.dump_json(conv.choices).decode(),
            _MESSAGES.dump_json(conv.messages).decode(),
        )

    def load(self, conversation_id: str) -> Conversation | None:
        """The saved conversation, or None when there is none by that id."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT title, choices, messages FROM conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
        if row is None:
            return None
        title, choices, messages = row
        try:
            return Conversation(
                _MESSAGES.validate_json(messages),
                conversation_id,
                title,
                _CHOICES.validate_json(choices),
            )
        except ValidationError as exc:
            raise ConversationStoreError(
                f"The conversation {title!r} in {self.path} cannot be read "
                f"({exc.error_count()} problems, the first: {exc.errors()[0]['msg']}). "
                "Delete it from the sidebar."
            ) from None

    def list(self) -> builtins.list[SavedConversation]:
        """Every saved conversation, the one most recently asked in first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, title, updated FROM conversations ORDER BY updated DESC, rowid DESC"
            ).fetchall()
        return [SavedConversation(*row) for row in rows]

    def rename(self, conversation_id: str, title: str) -> str:
        """Give it a new title (on one line); a blank one keeps the old. Returns the title."""
        with self._connect() as conn:
            if cleaned := " ".join(title.split()):
                conn.execute(
                    "UPDATE conversations SET title = ? WHERE id = ?", (cleaned, conversation_id)
                )
            row = conn.execute(
                "SELECT title FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
        return str(row[0]) if row else cleaned

    def delete(self, conversation_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))


def to_markdown(conv: Conversation) -> str:
    """The conversation as a Markdown file: each question, its answer, and the sources the
    answer cites, each with its document and the passage quoted."""
    lines = [f"# {conv.title or 'Conversation'}", ""]
    for message in conv.messages:
        if message.role == "user":
            lines += [f"**You:** {message.text.strip()}", ""]
            continue
        lines += ["**Quarry:**", ""]
        if message.text.strip():
            lines += [message.text.strip(), ""]
        if message.notice:
            lines += [f"_{message.notice.text}_", ""]
        elif message.stopped:
            lines += ["_Stopped: the answer is incomplete._", ""]
        if message.citations:
            lines += ["Sources:", ""]
        for citation in message.citations:
            quote = [f"> {line}".rstrip() for line in citation.passage.text.strip().splitlines()]
            lines += [f"[{citation.number}] {citation.passage.label}", "", *quote, ""]
    return "\n".join(lines).rstrip() + "\n"
