"""Tool-call reliability: classification of calls, and the command on the real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionMessage
from typer.testing import CliRunner

from quarry.cli import app
from quarry.eval.tools_eval import classify
from tests.conftest import RunningServer


def _message(name: str, arguments: str) -> ChatCompletionMessage:
    return ChatCompletionMessage.model_validate(
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
            ],
        }
    )


ITEM = {"id": "q", "expected_tool": "search_documents"}


def test_a_valid_call() -> None:
    result = classify(ITEM, _message("search_documents", '{"query": "ports", "k": 3}'))
    assert (result.called, result.parsed, result.valid, result.right_tool) == (
        True, True, True, True
    )  # fmt: skip


def test_arguments_as_a_bare_string_are_a_parse_failure() -> None:
    result = classify(ITEM, _message("search_documents", '"search_document_a"'))
    assert result.called and not result.parsed and not result.valid
    assert "must be a JSON object, got str" in result.error


def test_arguments_that_break_the_schema() -> None:
    result = classify(ITEM, _message("read_more", '{"passage": 0}'))
    assert result.parsed and not result.valid and not result.right_tool
    assert "passage" in result.error


def test_no_call_at_all() -> None:
    message = ChatCompletionMessage.model_validate({"role": "assistant", "content": "Hi"})
    result = classify(ITEM, message)
    assert not result.called and result.error == "no tool call"


@pytest.mark.server
def test_eval_tools_required_and_strict_on_the_real_server(
    vllm_server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUARRY_SERVER_PORT", str(vllm_server.settings.server.port))
    result = CliRunner().invoke(
        app, ["eval", "tools", "--tool-choice", "required", "--output", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval-tools-required-strict.json").read_text())
    assert data["summary"]["questions"] == 12
    # Measured here: 0.83 valid with strict schemas, 0.0 without (arguments sent as a string).
    assert data["summary"]["valid"] >= 0.5
