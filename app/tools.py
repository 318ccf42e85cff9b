"""Tools a capable model (Llama-3-8B with `llama3_json`) may call to look further.

Tool arguments come from the model and are untrusted: they may be a JSON string instead of
an object, miss fields or have the wrong types. Each call is validated here; a bad one
becomes an error message to the model, never an exception in the app.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field, ValidationError

from quarry.app.retrieval import Passage, Retriever


class SearchArgs(BaseModel):
    """Search the user's documents again, with other words."""

    query: str = Field(min_length=1, max_length=500, description="What to look for.")
    k: int = Field(4, ge=1, le=10, description="How many passages to return.")


class ReadMoreArgs(BaseModel):
    """Read the text around a passage already given, to see more of its document."""

    passage: int = Field(ge=1, description="The number of a passage, as in [n].")
    radius: int = Field(1, ge=1, le=3, description="Chunks to add before and after.")


@dataclass
class PassageRegistry:
    """Every passage shown to the model in one answer, numbered once, in order of arrival."""

    passages: list[Passage] = field(default_factory=list)

    def number(self, passage: Passage) -> int:
        for index, known in enumerate(self.passages):
            if known.chunk_id == passage.chunk_id:
                return index + 1
        self.passages.append(passage)
        return len(self.passages)

    def render(self, passages: list[Passage]) -> str:
        if not passages:
            return "No passages found."
        return "\n\n".join(f"[{self.number(p)}] {p.label}\n{p.text}" for p in passages)


def tool_schemas() -> list[StructuredTool]:
    """The tools as LangChain describes them to the model (`bind_tools`)."""

    def unused(**_: Any) -> str:  # execution goes through `run_tool_call`, which validates
        raise NotImplementedError

    return [
        StructuredTool.from_function(
            unused, name="search_documents", description=SearchArgs.__doc__, args_schema=SearchArgs
        ),
        StructuredTool.from_function(
            unused, name="read_more", description=ReadMoreArgs.__doc__, args_schema=ReadMoreArgs
        ),
    ]


def parse_arguments(raw: Any) -> dict[str, Any]:
    """Tool arguments as a dict, whether the model sent an object or a JSON string."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments are not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"arguments must be a JSON object, got {type(raw).__name__}")
    return raw


def run_tool_call(call: dict[str, Any], retriever: Retriever, registry: PassageRegistry) -> str:
    """Execute one tool call; the text returned goes back to the model as the tool's result."""
    name = call.get("name")
    handlers: dict[str, Callable[[dict[str, Any]], str]] = {
        "search_documents": lambda args: _search(SearchArgs.model_validate(args)),
        "read_more": lambda args: _read_more(ReadMoreArgs.model_validate(args)),
    }

    def _search(args: SearchArgs) -> str:
        return registry.render(retriever.search(args.query, args.k))

    def _read_more(args: ReadMoreArgs) -> str:
        if args.passage > len(registry.passages):
            raise ValueError(f"there is no passage [{args.passage}]")
        anchor = registry.passages[args.passage - 1]
        return registry.render(retriever.neighbours(anchor, args.radius))

    if name not in handlers:
        return f"Error: there is no tool {name!r}; use one of {', '.join(handlers)}."
    try:
        return handlers[name](parse_arguments(call.get("args")))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        return f"Error: invalid arguments for {name}: {problems}. Call it again, corrected."
    except ValueError as exc:
        return f"Error: {name}: {exc}. Call it again, corrected."
