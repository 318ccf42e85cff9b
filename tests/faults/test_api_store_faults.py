"""The Chroma server killed under a running `quarry api`: the next question, streamed or not,
is a 503 whose message is one sentence naming the server, the API process keeps running, and
once Chroma is back on the same port and folder the same question is answered."""

from __future__ import annotations

import sys
from pathlib import Path

import openai
import pytest

from quarry.eval.server_metrics import free_port
from quarry.ingest.embedding import Embedder
from quarry.ingest.pipeline import ingest
from quarry.serve.process import ManagedProcess
from tests.conftest import RunningServer
from tests.faults.conftest import COLLECTION, Chroma, cli_env, write_notes
from tests.faults.test_store_faults import settings_for

pytestmark = pytest.mark.server

QUESTION = [{"role": "user", "content": "The harbour log entry note3 records what?"}]


def _ask(client: openai.OpenAI, *, stream: bool) -> str:
    request = {"model": f"quarry/{COLLECTION}", "messages": QUESTION, "max_tokens": 16}
    if not stream:
        return client.chat.completions.create(**request).choices[0].message.content or ""
    chunks = client.chat.completions.create(**request, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_chroma_killed_under_quarry_api_is_a_503_sentence_then_the_retry_answers(
    tmp_path: Path, embedder: Embedder, vllm_server: RunningServer
) -> None:
    chroma = Chroma(tmp_path / "chroma" / "data", free_port()).start()
    try:
        data = tmp_path / "data"
        assert not ingest([write_notes(tmp_path / "docs", 12)], settings_for(data, chroma),
                          embedder=embedder).failed  # fmt: skip
        port = free_port()
        model_server = {k: v for k, v in vllm_server.env.items() if k.startswith("QUARRY_SERVER")}
        api = ManagedProcess(
            [sys.executable, "-m", "quarry.cli", "api"],
            tmp_path / "quarry-api.log",
            env={**cli_env(data, chroma), **model_server, "QUARRY_API_PORT": str(port)},
            name="quarry api",
            health_url=f"http://127.0.0.1:{port}/health",
        )
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        with api:
            api.wait_healthy(120)
            assert _ask(client, stream=False).strip()

            chroma.kill()
            for stream in (False, True):
                with pytest.raises(openai.APIStatusError) as down:
                    _ask(client, stream=stream)
                assert (down.value.status_code, down.value.code) == (503, "store_error")
                assert isinstance(down.value.body, dict)
                message = str(down.value.body["message"])  # the whole sentence, and only it
                assert message.startswith(f"The Chroma server at {chroma.url} is not answering")
                assert "Start it again, then retry" in message

            chroma.start()  # the same folder and port: the running API answers again
            assert _ask(client, stream=True).strip()
            assert _ask(client, stream=False).strip()
        assert "Traceback" not in api.log_text(), api.log_text()
    finally:
        chroma.stop()
