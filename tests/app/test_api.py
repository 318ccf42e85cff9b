"""`quarry api` as a real process over a real vLLM server, Chroma and embeddings, asked by the
official `openai` client, LangChain's ChatOpenAI and plain HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from quarry.app.api import SOURCES_HEADING, ApiError, ChatMessage, conversation
from quarry.eval.server_metrics import free_port
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.serve.process import ManagedProcess
from quarry.settings import load_settings
from tests.conftest import DOCS, RunningServer

pytestmark = pytest.mark.server

KEY = "test-key"
PORT_QUESTION = "How do I change the port of the model server?"
LEGAL = {
    "contracts/2024/lease.md": "# Office lease 2024\n\nThe 2024 office lease runs for three "
    "years. The rent is paid monthly to Harbour Estates.\n",
    "contracts/2023/lease.md": "# Office lease 2023\n\nThe 2023 office lease carried the "
    "Zanzibar clause: a penalty of ten thousand euros for leaving early.\n",
}


def test_the_question_is_the_last_user_message_and_earlier_source_lists_are_cut() -> None:
    messages = [
        ChatMessage(role="system", content="You are a pirate."),
        ChatMessage(role="user", content="How do I change the port?"),
        ChatMessage(role="assistant", content=f"Use --port [1].{SOURCES_HEADING}- [1] conf.md"),
        ChatMessage(role="user", content=[{"type": "text", "text": "And the page's?"}]),
    ]
    question, history = conversation(messages)
    assert question == "And the page's?"
    assert [(t.role, t.content) for t in history] == [
        ("user", "How do I change the port?"),
        ("assistant", "Use --port [1]."),
    ]  # the system message is not passed on: Quarry answers with its own prompt
    with pytest.raises(ApiError, match="last message must be the user's question"):
        conversation(messages[:3])


@dataclass(frozen=True)
class ApiServer:
    url: str
    env: dict[str, str]  # what `quarry api` was started with
    vllm_port: int


@pytest.fixture(scope="module")
def api(
    vllm_server: RunningServer, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """`quarry api` on a data folder holding the docs and a two-folder "legal" collection."""
    data = tmp_path_factory.mktemp("api-data")
    legal = tmp_path_factory.mktemp("legal")
    for rel, text in LEGAL.items():
        (legal / rel).parent.mkdir(parents=True, exist_ok=True)
        (legal / rel).write_text(text)
    for collection, root in (("quarry-docs", DOCS), ("legal", legal)):
        settings = load_settings(profile="cpu", data_dir=data, ingest={"collection": collection})
        assert not ingest([root], settings, embedder=embedder).failed
    port = free_port()
    env = {
        **vllm_server.env,
        "QUARRY_DATA_DIR": str(data),
        "QUARRY_API_PORT": str(port),
        "QUARRY_API_API_KEY": KEY,
    }
    process = ManagedProcess(
        [sys.executable, "-m", "quarry.cli", "api"],
        Path(data) / "quarry-api.log",
        env=env,
        name="quarry api",
        health_url=f"http://127.0.0.1:{port}/health",
    )
    with process:
        process.wait_healthy(120)
        yield ApiServer(f"http://127.0.0.1:{port}/v1", env, vllm_server.settings.server.port)
    assert "Traceback" not in process.log_text(), process.log_text()


@pytest.fixture
def api_url(api: ApiServer) -> str:
    return api.url


@pytest.fixture
def client(api_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=api_url, api_key=KEY, max_retries=0)


def test_models_are_the_collections(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {"quarry/quarry-docs", "quarry/legal"}


def test_errors_come_in_openais_shape(api_url: str, client: openai.OpenAI) -> None:
    wrong = openai.OpenAI(base_url=api_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="QUARRY_API_API_KEY"):
        wrong.models.list()
    with pytest.raises(openai.NotFoundError, match="Models: quarry/legal, quarry/quarry-docs"):
        client.chat.completions.create(
            model="quarry/nothing", messages=[{"role": "user", "content": "hi"}]
        )
    bad = httpx.post(
        f"{api_url}/chat/completions",
        json={"model": "quarry/quarry-docs", "messages": []},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    with pytest.raises(openai.BadRequestError, match=r"is under invoices/") as caught:
        client.chat.completions.create(
            model="quarry/legal",
            messages=[{"role": "user", "content": "What does the lease cost?"}],
            extra_body={"scope": ["invoices/"]},
        )
    assert caught.value.code == "scope_empty"


def test_an_answer_cites_its_sources_in_the_text_and_as_a_field(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="quarry/quarry-docs",
        messages=[{"role": "user", "content": PORT_QUESTION}],
        max_tokens=80,
    )
    text = completion.choices[0].message.content or ""
    answer, _, listed = text.partition(SOURCES_HEADING)
    assert "[" in answer and "configuration.md" in listed, text
    sources = (completion.model_extra or {})["sources"]
    cited = [s for s in sources if s["cited"]]
    assert cited and "configuration.md" in {s["document"] for s in cited}
    assert all(s["text"] and isinstance(s["supported"], bool) for s in cited)
    assert all(f"[{s['number']}]" in answer for s in cited)
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 100 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_streamed_answer_ends_with_sources_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="quarry/quarry-docs",
        messages=[
            {"role": "user", "content": PORT_QUESTION},
            {"role": "assistant", "content": "Use the `--port` flag of `quarry serve` [1]."},
            {"role": "user", "content": "And with an environment variable?"},
        ],
        max_tokens=80,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    last = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert last.choices[0].finish_reason in ("stop", "length")
    sources = (last.model_extra or {})["sources"]
    assert sources and all(s["document"] for s in sources)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    if any(s["cited"] for s in sources):
        assert SOURCES_HEADING in text


def test_langchain_chat_openai_asks_a_collection_streamed_and_not(api_url: str) -> None:
    llm = ChatOpenAI(
        base_url=api_url,
        api_key=SecretStr(KEY),
        model="quarry/quarry-docs",
        max_completion_tokens=80,
    )
    reply = llm.invoke(PORT_QUESTION)
    assert isinstance(reply.content, str) and "configuration.md" in reply.content
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0
    pieces = [str(chunk.content) for chunk in llm.stream(PORT_QUESTION)]
    assert len(pieces) > 3 and "configuration.md" in "".join(pieces)


def test_a_scoped_question_cannot_see_a_document_outside_its_scope(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "What penalty does the Zanzibar clause set?"}]
    open_ = client.chat.completions.create(model="quarry/legal", messages=question, max_tokens=40)
    found = {s["document"] for s in (open_.model_extra or {})["sources"]}
    assert "contracts/2023/lease.md" in found
    scoped = client.chat.completions.create(
        model="quarry/legal",
        messages=question,
        max_tokens=40,
        extra_body={"scope": ["contracts/2024/"]},
    )
    seen = {s["document"] for s in (scoped.model_extra or {})["sources"]}
    assert seen <= {"contracts/2024/lease.md"}
    assert "ten thousand" not in (scoped.choices[0].message.content or "")


def _examples(language: str) -> list[str]:
    text = (DOCS / "api.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _as_run_here(example: str, api: ApiServer) -> str:
    """The example pointed at this test's servers: their ports, and the key this API has."""
    port = api.url.split(":")[-1].split("/")[0]
    return (
        example.replace("127.0.0.1:8600", f"127.0.0.1:{port}")
        .replace("127.0.0.1:8000", f"127.0.0.1:{api.vllm_port}")
        .replace('api_key="unused"', f'api_key="{KEY}"')
        .replace("curl -s ", f"curl -s -H 'Authorization: Bearer {KEY}' ")
    )


def test_the_curl_examples_in_the_docs_work_as_written(api: ApiServer) -> None:
    curls = [e for e in _examples("bash") if e.startswith("curl")]
    assert len(curls) == 2
    for example in curls:
        done = subprocess.run(
            ["bash", "-c", _as_run_here(example, api)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        body = json.loads(done.stdout)
        assert "error" not in body and ("data" in body or body["sources"]), body


def test_the_python_examples_in_the_docs_work_as_written(api: ApiServer) -> None:
    examples = _examples("python")
    assert len(examples) == 4
    for example in examples:
        done = subprocess.run(
            [sys.executable, "-c", _as_run_here(example, api)],
            capture_output=True,
            text=True,
            timeout=300,
            env=api.env,
        )
        assert done.returncode == 0, f"{example}\n{done.stderr}"
        assert done.stdout.strip(), example
