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

from pydantic import BaseModel, Field, ValidationError


class QaItem(BaseModel):
    model_config = {"extra": "forbid"}

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    expected_sources: list[str] = Field(default_factory=list)
    answer: str | None = None
    facts: list[str] = Field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.expected_sources)


class QaSetError(ValueError):
    """A question set that cannot be used; the message names the file, line and field."""


def load_qa(path: Path) -> list[QaItem]:
    if not path.is_file():
        raise QaSetError(f"{path}: no such question set (a JSONL file, one question a line).")
    items: list[QaItem] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        where = f"{path}:{number}"
        try:
            item = QaItem.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise QaSetError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno}).") from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors()
            )
            raise QaSetError(f"{where}: {problems}.") from None
        if item.id in seen:
            raise QaSetError(f"{where}: id {item.id!r} is used twice; ids must be unique.")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise QaSetError(f"{path}: no questions in the file.")
    return items


class FollowupTurn(BaseModel):
    model_config = {"extra": "forbid"}

    question: str = Field(min_length=1)
    standalone: str = Field(min_length=1)
    expected_sources: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.expected_sources)


class Conversation(BaseModel):
    model_config = {"extra": "forbid"}

    id: str = Field(min_length=1)
    turns: list[FollowupTurn] = Field(min_length=2)


def load_conversations(path: Path) -> list[Conversation]:
    """A multi-turn set; errors name the file, the line and the field, like `load_qa`."""
    if not path.is_file():
        raise QaSetError(
            f"{path}: no such conversation set (a JSONL file, one conversation a line)."
        )
    conversations: list[Conversation] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        where = f"{path}:{number}"
        try:
            conversation = Conversation.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise QaSetError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno}).") from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors()
            )
            raise QaSetError(f"{where}: {problems}.") from None
        first = conversation.turns[0]
        if first.standalone != first.question:
            raise QaSetError(
                f"{where}: turns.0.standalone: the first turn has nothing before it, so its "
                "standalone must equal its question."
            )
        if conversation.id in seen:
            raise QaSetError(f"{where}: id {conversation.id!r} is used twice; ids must be unique.")
        seen.add(conversation.id)
        conversations.append(conversation)
    if not conversations:
        raise QaSetError(f"{path}: no conversations in the file.")
    return conversations
