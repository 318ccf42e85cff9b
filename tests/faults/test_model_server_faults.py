"""The model server killed before, during and after a streamed answer through `quarry api`.

A dedicated vLLM (not the session's) is started through `quarry serve` and killed for real
(SIGKILL to the processes listening on its port). What a client sees must be one sentence in
OpenAI's error shape, never a traceback; the API itself keeps running, and the same request
succeeds once the model server is back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import psutil
import pytest

from quarry.app.errors import SERVER_DOWN
from quarry.eval.load_bench import listening_on
from quarry.eval.server_metrics import free_port
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.serve.process import ManagedProcess
from quarry.settings import load_settings
from tests.conftest import DOCS, server_env, start_quarry_serve, wait_until_ready

pytestmark = pytest.mark.server

QUESTION = [{"role": "user", "content": "How do I change the port of the model server?"}]


@dataclass
class ModelServer:
    """A dedicated `quarry serve` (vLLM on the CPU) that can be killed and started again on
    the same port."""

    env: dict[str, str]
    port: int
    serve: ManagedProcess | None = None

    def start(self) -> None:
        self.serve = start_quarry_serve(self.env)
        wait_until_ready(self.serve)

    def kill(self) -> None:
        """SIGKILL to vLLM and its workers, as a crash or the OOM killer would."""
        for pid in listening_on(self.port):
            with_children = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
            for process in with_children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
        if self.serve is not None:
            self.serve.stop(grace_s=10)


@dataclass
class Stack:
    client: openai.OpenAI
    api: ManagedProcess
    model_server: ModelServer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("faults-data")
    settings = load_settings(profile="cpu", data_dir=data, ingest={"collection": "quarry-docs"})
    assert not ingest([DOCS], settings, embedder=embedder).failed
    vllm_port, api_port = free_port(), free_port()
    env = server_env(data, vllm_port)
    api = ManagedProcess(
        [sys.executable, "-m", "quarry.cli", "api"],
        Path(data) / "quarry-api.log",
        env={**env, "QUARRY_API_PORT": str(api_port)},
        name="quarry api",
        health_url=f"http://127.0.0.1:{api_port}/health",
    )
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{api_port}/v1", api_key="x", max_retries=0)
    stack = Stack(client, api, ModelServer(env, vllm_port))
    with api:
        api.wait_healthy(120)
        stack.model_server.start()
        try:
            yield stack
        finally:
            stack.model_server.kill()
        assert "Traceback" not in api.log_text(), api.log_text()


def _stream(client: openai.OpenAI, max_tokens: int) -> Iterator[str]:
    stream = client.chat.completions.create(
        model="quarry/quarry-docs", messages=QUESTION, max_tokens=max_tokens, stream=True
    )  # type: ignore[call-overload]
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            yield chunk.choices[0].delta.content


def test_killed_after_during_and_before_an_answer_then_back(stack: Stack) -> None:
    after = "".join(_stream(stack.client, 40))  # a whole answer, before anything breaks
    assert after.strip()

    pieces = []
    with pytest.raises(openai.APIError) as during:
        for piece in _stream(stack.client, 400):
            pieces.append(piece)
            if len(pieces) == 3:
                stack.model_server.kill()
    assert len(pieces) >= 3  # what had streamed reached the client
    assert str(during.value.message) == SERVER_DOWN

    with pytest.raises(openai.APIStatusError) as before:
        list(_stream(stack.client, 40))
    assert before.value.status_code == 503
    assert before.value.code == "model_server_unavailable"
    assert "No model server answers at" in before.value.message
    assert "Start it with `quarry serve`" in before.value.message

    stack.model_server.start()
    again = "".join(_stream(stack.client, 40))  # the same request, once the server is back
    assert again.strip()
