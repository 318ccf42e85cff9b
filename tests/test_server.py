"""Against the real vLLM server (CPU profile) that `quarry serve` started."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import openai
import pytest

from quarry.serve.doctor import run_doctor
from quarry.serve.process import parse_capacity
from tests.conftest import RunningServer, free_port, server_env, start_quarry_serve

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def client(vllm_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{vllm_server.base_url}/v1", api_key="unused")


def test_ready_banner_reports_endpoint_model_and_capacity(vllm_server: RunningServer) -> None:
    printed = vllm_server.printed
    assert f"{vllm_server.base_url}/v1" in printed
    assert "SmolLM2-135M-Instruct" in printed
    assert re.search(r"KV cache\s+[\d,]+ tokens", printed), printed
    assert re.search(r"Max concurrency\s+[\d.]+x at 2,048 tokens per request", printed), printed


def test_models_endpoint_lists_the_served_name(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["SmolLM2-135M-Instruct"]


def test_chat_completion_answers(client: openai.OpenAI, vllm_server: RunningServer) -> None:
    reply = client.chat.completions.create(
        model=vllm_server.model,
        # Worded so that the answer is not a near tie: "What is the capital of France?" alone
        # starts "The" or "L'" within 0.2 in log-probability, and CPU kernels tip it either way.
        messages=[{"role": "user", "content": "Complete the sentence: The capital of France is"}],
        max_tokens=32,
        temperature=0,
    )
    text = reply.choices[0].message.content or ""
    assert "Paris" in text
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_streaming_delivers_the_same_text_in_many_chunks(
    client: openai.OpenAI, vllm_server: RunningServer
) -> None:
    request = {
        "model": vllm_server.model,
        "messages": [{"role": "user", "content": "Count from one to ten."}],
        "max_tokens": 48,
        "temperature": 0,
    }
    whole = client.chat.completions.create(**request).choices[0].message.content
    stream = client.chat.completions.create(**request, stream=True)
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 5, pieces
    assert "".join(pieces) == whole


def _prefix_cache_counters(base_url: str) -> tuple[float, float]:
    metrics = httpx.get(f"{base_url}/metrics", timeout=10).text

    def total(name: str) -> float:
        return sum(
            float(v) for v in re.findall(rf"^vllm:{name}\{{.*\}} ([\d.e+]+)$", metrics, re.M)
        )

    return total("prefix_cache_queries_total"), total("prefix_cache_hits_total")


def test_prefix_cache_hits_rise_when_a_long_prefix_repeats(
    client: openai.OpenAI, vllm_server: RunningServer
) -> None:
    # About 1,200 tokens of a shared prefix: several full 128-token blocks on the CPU backend.
    stamp = time.time_ns()  # unique, so earlier tests cannot have cached it
    prefix = f"Reference {stamp}. " + " ".join(
        f"Paragraph {i}: the quarry ships granite to the harbour every Tuesday." for i in range(80)
    )
    queries_before, hits_before = _prefix_cache_counters(vllm_server.base_url)
    for question in ("Which day do ships leave?", "What stone is shipped?"):
        client.chat.completions.create(
            model=vllm_server.model,
            messages=[{"role": "system", "content": prefix}, {"role": "user", "content": question}],
            max_tokens=1,
        )
    queries_after, hits_after = _prefix_cache_counters(vllm_server.base_url)
    assert queries_after - queries_before > 2000
    # The second request reuses the first one's full blocks of the shared prefix.
    assert hits_after - hits_before >= 1024


def test_doctor_estimate_matches_the_servers_kv_capacity(vllm_server: RunningServer) -> None:
    log = vllm_server.settings.data_dir / "logs" / f"vllm-{vllm_server.settings.server.port}.log"
    reported = parse_capacity(log.read_text())
    assert reported is not None
    estimate = run_doctor(vllm_server.settings).facts["kv_cache"]
    assert abs(estimate["tokens"] - reported.kv_cache_tokens) <= 0.01 * reported.kv_cache_tokens
    assert estimate["max_concurrency"] == pytest.approx(reported.max_concurrency, rel=0.01)


def test_a_taken_port_is_refused_before_vllm_starts(vllm_server: RunningServer) -> None:
    serve = start_quarry_serve(vllm_server.env)  # the running server's port
    code = serve.wait(timeout_s=120)
    printed = " ".join(serve.log_text().split())
    assert code == 2, printed
    assert f"server.port: 127.0.0.1:{vllm_server.settings.server.port} is already in use" in printed


def test_a_server_that_fails_shows_its_log_and_a_hint(tmp_path: Path) -> None:
    # SmolLM2 knows 8,192 positions: vLLM refuses a longer model length at start-up.
    env = server_env(tmp_path, free_port())
    serve = start_quarry_serve(env, "--max-model-len", "100000")
    code = serve.wait(timeout_s=300)
    printed = serve.log_text()
    assert code == 1, printed
    assert "vLLM exited with code" in printed
    assert "last lines of" in printed
    assert "max_model_len" in printed
    assert "Hint: The model length does not fit: lower --max-model-len." in printed
