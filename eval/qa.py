"""Labelled question sets: one JSON object per line.

    {"id": "port", "question": "How do I change the server's port?",
     "expected_sources": ["configuration.md"], "answer": "...", "facts": ["--port"]}

`expected_sources` are paths relative to the ingested folder (as `quarry collections` shows
them); an empty list marks a question the collection cannot answer, which the chat should
refuse. `answer` (a reference answer) and `facts` (strings a good answer contains) are
optional.

Multi-turn sets (`load_conversations`) hold one conversation a line, 2 turns or more:

    {"id": "port-then-chat", "turns": [
      {"question": "How do I change the server's port?",
       "standalone": "How do I change the server's port?",
       "expected_sources": ["configuration.md"], "facts": ["--port"]},
      {"question": "and the chat page?",
       "standalone": "How do I change the port of the chat page?",
       "expected_sources": ["configuration.md"], "facts": ["QUARRY_CHAT_UI_PORT"]}]}

`question` is what a user types in the conversation; `standalone` the same need written so
that it reads without the turns before it (for the first turn, the question itself).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field, ValidationError


class Identified(BaseModel):
    """A record of a set: one line, with an id unique in its file."""

    model_config = {"extra": "forbid"}

    id: str = Field(min_length=1)


class QaItem(Identified):
    question: str = Field(min_length=1)
    expected_sources: list[str] = Field(default_factory=list)
    answer: str | None = None
    facts: list[str] = Field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.expected_sources)


class QaSetError(ValueError):
    """A question set that cannot be used; the message names the file, line and field."""


Record = TypeVar("Record", bound=Identified)


def _records(path: Path, model: type[Record], kind: str) -> list[tuple[str, Record]]:
    """Each line of a JSONL set validated as `model`, with where it was ("file:line"); errors
    name the file, the line and the field. Blank lines and // comments are skipped."""
    if not path.is_file():
        raise QaSetError(f"{path}: no such {kind} set (a JSONL file, one {kind} a line).")
    records: list[tuple[str, Record]] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        where = f"{path}:{number}"
        try:
            record = model.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise QaSetError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno}).") from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors()
            )
            raise QaSetError(f"{where}: {problems}.") from None
        if record.id in seen:
            raise QaSetError(f"{where}: id {record.id!r} is used twice; ids must be unique.")
        seen.add(record.id)
        records.append((where, record))
    if not records:
        raise QaSetError(f"{path}: no {kind}s in the file.")
    return records


def load_qa(path: Path) -> list[QaItem]:
    return [item for _, item in _records(path, QaItem, "question")]


class FollowupTurn(BaseModel):
    model_config = {"extra": "forbid"}

    question: str = Field(min_length=1)
    standalone: str = Field(min_length=1)
    expected_sources: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.expected_sources)


class Conversation(Identified):
    turns: list[FollowupTurn] = Field(min_length=2)


def load_conversations(path: Path) -> list[Conversation]:
    """A multi-turn set; errors name the file, the line and the field, like `load_qa`."""
    conversations = _records(path, Conversation, "conversation")
    for where, conversation in conversations:
        first = conversation.turns[0]
        if first.standalone != first.question:
            raise QaSetError(
                f"{where}: turns.0.standalone: the first turn has nothing before it, so its "
                "standalone must equal its question."
            )
    return [conversation for _, conversation in conversations]
