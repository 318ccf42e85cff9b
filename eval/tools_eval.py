"""`quarry eval tools`: how often does the served model produce a valid tool call?

Each question is sent with Quarry's tools (app/tools.py). A call counts as valid when its
arguments parse as a JSON object and satisfy the tool's argument model (the same validation
the chat applies), and as right when it names the expected tool. Parse failures are
counted, not hidden: they show how far to trust tool calling on a given model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool
from openai import OpenAI
from pydantic import ValidationError

from quarry.app.tools import TOOLS, parse_arguments, problems, tool_schemas

SHIPPED_TOOLS_SET = Path(__file__).resolve().parent / "qa" / "tools.jsonl"
SYSTEM = (
    "You answer questions about the user's documents. Use the tools: search_documents to "
    "search, read_more to read around a passage you were given (passages 1 and 2 exist)."
)


@dataclass
class ToolCallResult:
    id: str
    called: bool
    tool: str | None
    parsed: bool
    valid: bool
    right_tool: bool
    error: str = ""


def classify(item: dict[str, Any], message: Any) -> ToolCallResult:
    calls = message.tool_calls or []
    if not calls:
        return ToolCallResult(item["id"], False, None, False, False, False, "no tool call")
    call = calls[0].function
    result = ToolCallResult(
        item["id"], True, call.name, False, False, call.name == item.get("expected_tool")
    )
    try:
        args = parse_arguments(call.arguments)
        result.parsed = True
        tool = TOOLS.get(call.name)
        if tool is None:
            result.error = f"unknown tool {call.name!r}"
            return result
        tool.validate(args)  # the chat's own validation
        result.valid = True
    except ValidationError as exc:
        result.error = problems(exc)
    except ValueError as exc:
        result.error = str(exc)
    return result


def evaluate(
    client: OpenAI, model: str, items: list[dict[str, Any]], tool_choice: str, *, strict: bool
) -> list[ToolCallResult]:
    tools = [convert_to_openai_tool(t, strict=strict) for t in tool_schemas()]
    results = []
    for item in items:
        response = client.chat.completions.create(  # type: ignore[call-overload]
            model=model,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": item["question"]},
            ],
            tools=tools,  # type: ignore[arg-type]
            tool_choice=tool_choice,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=256,
        )
        results.append(classify(item, response.choices[0].message))
    return results


def summary(results: list[ToolCallResult]) -> dict[str, float]:
    n = len(results)
    return {
        "questions": float(n),
        "called": sum(r.called for r in results) / n,
        "parsed": sum(r.parsed for r in results) / n,
        "valid": sum(r.valid for r in results) / n,
        "right_tool": sum(r.right_tool for r in results) / n,
        "valid_and_right": sum(r.valid and r.right_tool for r in results) / n,
    }


def load_items(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def markdown(results: list[ToolCallResult], model: str, tool_choice: str, strict: bool) -> str:
    lines = [
        f"# Tool calls: {model}, tool_choice={tool_choice}, strict={strict}",
        "",
        "| measure | rate |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.2f} |" for k, v in summary(results).items() if k != "questions"]
    lines += [
        "",
        "| id | tool | parsed | valid | right tool | error |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.id} | {r.tool or '-'} | {r.parsed} | {r.valid} | {r.right_tool} "
            f"| {r.error[:80]} |"
        )
    return "\n".join(lines) + "\n"


def as_dicts(results: list[ToolCallResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]
