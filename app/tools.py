"""Tools a capable model (Llama-3-8B with `llama3_json`) may call to look further.

Each tool is defined once, in `TOOLS`: its name, description, argument model and the function
that runs it. What the model is told (`tool_schemas`) is derived from the argument model, and
the chat and `quarry eval tools` validate calls with the same model, so the three cannot drift.

Tool arguments come from the model and are untrusted: they may be a JSON string instead of
an object, miss fields or have the wrong types. Each call is validated here; a bad one
becomes an error message to the model naming the bad argument, never an exception in the app.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from langchain_core.utils.function_calling import convert_to_openai_function
from pydantic import BaseModel, Field, ValidationError

from quarry.app.retrieval import Passage, Searcher

ArgsT = TypeVar("ArgsT", bound=BaseModel)


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


@dataclass(frozen=True)
class Tool(Generic[ArgsT]):
    """One tool: what the model is told of it, and what runs when it is called.

    `run` gets validated arguments, the retriever and the answer's passages; a ValueError it
    raises goes back to the model as a correctable error."""

    name: str
    description: str
    args: type[ArgsT]
    run: Callable[[ArgsT, Searcher, PassageRegistry], str]

    def schema(self) -> dict[str, Any]:
        """The tool in OpenAI's function format, from the argument model's JSON schema."""
        function = convert_to_openai_function(self.args)  # titles dropped, refs inlined
        return {**function, "name": self.name, "description": self.description}

    def validate(self, raw: Any) -> ArgsT:
        """The model's arguments (an object or a JSON string), checked against `args`."""
        return self.args.model_validate(parse_arguments(raw))


class SearchArgs(BaseModel):
    """The arguments of `search_documents`."""

    query: str = Field(min_length=1, max_length=500, description="What to look for.")
    k: int = Field(4, ge=1, le=10, description="How many passages to return.")


class ReadMoreArgs(BaseModel):
    """The arguments of `read_more`."""

    passage: int = Field(ge=1, description="The number of a passage, as in [n].")
    radius: int = Field(1, ge=1, le=3, description="Chunks to add before and after.")


def _search(args: SearchArgs, retriever: Searcher, registry: PassageRegistry) -> str:
    return registry.render(retriever.search(args.query, args.k))


def _read_more(args: ReadMoreArgs, retriever: Searcher, registry: PassageRegistry) -> str:
    if args.passage > len(registry.passages):
        raise ValueError(
            f"passage: there is no passage [{args.passage}] (there are {len(registry.passages)})"
        )
    anchor = registry.passages[args.passage - 1]
    return registry.render(retriever.neighbours(anchor, args.radius))


TOOLS: dict[str, Tool[Any]] = {
    tool.name: tool
    for tool in (
        Tool(
            "search_documents",
            "Search the user's documents again, with other words.",
            SearchArgs,
            _search,
        ),
        Tool(
            "read_more",
            "Read the text around a passage already given, to see more of its document.",
            ReadMoreArgs,
            _read_more,
        ),
    )
}


def tool_schemas() -> list[dict[str, Any]]:
    """Every tool as the model is told of it; `bind_tools` and `convert_to_openai_tool` take
    these and add `strict`."""
    return [tool.schema() for tool in TOOLS.values()]


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


def problems(exc: ValidationError) -> str:
    """Pydantic's errors as one line that names each bad argument."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )


def run_tool_call(call: dict[str, Any], retriever: Searcher, registry: PassageRegistry) -> str:
    """Execute one tool call; the text returned goes back to the model as the tool's result."""
    name = call.get("name")
    tool = TOOLS.get(str(name))
    if tool is None:
        return f"Error: there is no tool {name!r}; use one of {', '.join(TOOLS)}."
    try:
        return tool.run(tool.validate(call.get("args")), retriever, registry)
    except ValidationError as exc:
        return f"Error: invalid arguments for {name}: {problems(exc)}. Call it again, corrected."
    except ValueError as exc:
        return f"Error: {name}: {exc}. Call it again, corrected."
