"""`quarry bench chat`: the /metrics arithmetic offline, two turns on the real server."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from quarry.app.retrieval import Retriever
from quarry.cli import app
from quarry.components import Components
from quarry.eval.chat_bench import (
    ChatTurnResult,
    MetricsUnavailableError,
    ServerCounters,
    exceeded,
    markdown_report,
    run_chat_bench,
    summarize,
    turn_result,
)
from quarry.eval.server_metrics import parse_samples
from quarry.ingest.embedding import Embedder
from quarry.settings import QuarrySettings
from tests.conftest import SAMPLE, RunningServer

# Shaped like vLLM 0.32's page: two engines, histograms with `le` buckets, `_created` gauges
# beside counters, a negative exponent, a label value holding `}` and `,`, a timestamp.
METRICS = """\
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="SmolLM2-135M"} 82596.0
vllm:prefix_cache_queries_total{engine="1",model_name="SmolLM2-135M"} 404.0
# HELP vllm:prefix_cache_queries_created Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_created gauge
vllm:prefix_cache_queries_created{engine="0",model_name="SmolLM2-135M"} 1.7961570359572442e+09
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="SmolLM2-135M"} 13696.0
vllm:prefix_cache_hits_total{engine="1",model_name="SmolLM2-135M"} 304.0 1796157035957
vllm:external_prefix_cache_hits_total{engine="0",model_name="SmolLM2-135M"} 999.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.08",model_name="SmolLM2-135M"} 4.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="SmolLM2-135M"} 49.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="SmolLM2-135M"} 260.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="SmolLM2-135M"} 260.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="SmolLM2-135M"} 57.402206897735596
vllm:time_to_first_token_seconds_bucket{engine="1",le="+Inf",model_name="SmolLM2-135M"} 2.0
vllm:time_to_first_token_seconds_count{engine="1",model_name="SmolLM2-135M"} 2.0
vllm:time_to_first_token_seconds_sum{engine="1",model_name="SmolLM2-135M"} 2.5e-01
vllm:time_to_first_token_seconds_created{engine="0",model_name="SmolLM2-135M"} 1.79e+09
vllm:inter_token_latency_seconds_sum{engine="0",model_name="SmolLM2-135M"} 5.5e-05
vllm:kv_cache_usage_perc{engine="0",model_name="SmolLM2-135M",note="a}b, c"} NaN
vllm:num_requests_running{engine="0",model_name="odd}name, \\"quoted\\""} 3.0
process_cpu_seconds_total 12.5
"""


def test_samples_are_summed_over_label_sets_by_exact_name() -> None:
    totals = parse_samples(METRICS)
    assert totals["vllm:prefix_cache_queries_total"] == 83000.0
    assert totals["vllm:prefix_cache_hits_total"] == 14000.0  # the timestamp is not the value
    assert totals["vllm:time_to_first_token_seconds_count"] == 262.0  # not the buckets' 315
    assert totals["vllm:time_to_first_token_seconds_sum"] == pytest.approx(57.652206897735596)
    assert totals["vllm:inter_token_latency_seconds_sum"] == pytest.approx(5.5e-05)
    assert totals["vllm:num_requests_running"] == 3.0  # quotes and braces inside a label
    assert totals["process_cpu_seconds_total"] == 12.5
    assert "vllm:kv_cache_usage_perc" not in totals  # NaN is skipped
    assert not any(name.startswith("#") for name in totals)


def test_only_the_names_asked_for_each_present() -> None:
    totals = parse_samples(METRICS, ["vllm:prefix_cache_hits_total", "vllm:absent_total"])
    assert totals == {"vllm:prefix_cache_hits_total": 14000.0, "vllm:absent_total": 0.0}


def test_counters_from_a_page_and_a_page_without_vllm() -> None:
    counters = ServerCounters.from_text(METRICS)
    assert counters.ttft_sum_s == pytest.approx(57.652206897735596)
    assert (counters.ttft_count, counters.cache_queries, counters.cache_hits) == (262, 83000, 14000)
    assert counters.in_flight == 3.0  # running and waiting requests: a gauge
    with pytest.raises(MetricsUnavailableError, match="no vllm:time_to_first_token"):
        ServerCounters.from_text("process_cpu_seconds_total 1.0\n")


def _at(ttft_sum: float, count: int, queried: int, hits: int) -> ServerCounters:
    return ServerCounters(ttft_sum, count, queried, hits)


def test_a_turn_with_one_request() -> None:
    before = _at(10.0, 5, 1000, 100)
    after = _at(10.4, 6, 1800, 500)
    result = turn_result(
        1, "Q?", 0.6, before=before, answer_start=before, first_token=after, after=after
    )
    assert result.server_ttft_s == pytest.approx(0.4)
    assert result.ratio == pytest.approx(1.5)
    assert (result.server_requests, result.answer_requests) == (1, 1)
    assert (result.prompt_tokens_queried, result.cached_tokens) == (800, 400)
    assert result.cache_hit_rate == pytest.approx(0.5)


def test_a_request_before_a_status_is_kept_out_of_the_answer_request() -> None:
    before = _at(10.0, 5, 1000, 100)
    marked = _at(10.1, 6, 1200, 150)  # read at a Status event: a tool round has finished
    first_token = _at(10.4, 7, 2000, 900)
    after = _at(10.45, 8, 2050, 940)  # a citation check after the answer
    result = turn_result(
        2,
        "And the chat page?",
        1.2,
        before=before,
        answer_start=marked,
        first_token=first_token,
        after=after,
    )
    assert result.server_ttft_s == pytest.approx(0.3)
    assert result.ratio == pytest.approx(4.0)
    assert (result.server_requests, result.answer_requests) == (3, 1)
    assert result.prompt_tokens_queried == 800 and result.cache_hit_rate == pytest.approx(
        0.9375
    )  # 750 of 800


def test_an_answer_request_not_isolated_reports_the_mean_and_the_count() -> None:
    before = _at(0.0, 0, 0, 0)
    after = _at(0.5, 2, 1000, 0)
    result = turn_result(
        2, "Q?", 1.0, before=before, answer_start=before, first_token=after, after=after
    )
    assert result.server_ttft_s == pytest.approx(0.25)
    assert result.answer_requests == 2 and result.cache_hit_rate == 0.0
    assert result.others_in_flight == 0 and not summarize([result])["shared_server"]


def test_another_clients_requests_are_seen_and_warned_about() -> None:
    before = ServerCounters(0.0, 0, 0, 0, in_flight=0)
    first_token = ServerCounters(0.5, 3, 900, 0, in_flight=3)  # ours and two others
    result = turn_result(
        1,
        "Q?",
        1.0,
        before=before,
        answer_start=before,
        first_token=first_token,
        after=ServerCounters(0.5, 3, 900, 0, in_flight=1),
    )
    assert result.others_in_flight == 2 and result.answer_requests == 3
    assert summarize([result])["shared_server"]
    assert "other clients' requests" in markdown_report([result])


def test_a_refusal_without_a_request_has_no_ratio() -> None:
    same = _at(1.0, 1, 10, 0)
    result = turn_result(
        1, "Q?", None, before=same, answer_start=same, first_token=same, after=same
    )
    assert result.server_ttft_s is None and result.ratio is None
    assert result.cache_hit_rate is None and result.server_requests == 0


def _results() -> list[ChatTurnResult]:
    points = [(1, 2.0, 0.5), (2, 1.5, 0.5), (3, 1.0, 0.4), (4, None, None)]
    results = []
    for turn, quarry, server in points:
        start = _at(0.0, 0, 0, 0)
        end = _at(server, 1, 100, 50) if server else start
        results.append(
            turn_result(
                turn,
                f"Q{turn}?",
                quarry,
                before=start,
                answer_start=start,
                first_token=end,
                after=end,
            )
        )
    return results


def test_summary_separates_turn_one_from_the_follow_ups() -> None:
    summary = summarize(_results())
    assert summary["first_ratio_mean"] == summary["first_ratio_max"] == pytest.approx(4.0)
    assert summary["followup_ratio_mean"] == pytest.approx(2.75)
    assert summary["followup_ratio_max"] == pytest.approx(3.0)
    assert summary["followup_quarry_ttft_mean_s"] == pytest.approx(1.25)
    assert summary["unmeasured_turns"] == [4]
    assert summary["not_isolated_turns"] == [4]
    assert exceeded(summary, 5.0, 3.0) == []
    assert exceeded(summary, 3.5, 2.5) == [
        "turn 1: ratio 4.00 > 3.50",
        "follow-ups: ratio 3.00 > 2.50",
    ]
    report = markdown_report(_results(), "Chat bench")
    assert "| 1 | Q1? | 2.000 | 0.500 | 4.00 | 1 | 100 | 50% |" in report
    assert "No ratio for turns [4]" in report


def test_a_server_that_is_down_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARRY_PROFILE", "cpu")
    monkeypatch.setenv("QUARRY_SERVER_PORT", "9")
    result = CliRunner().invoke(app, ["bench", "chat"])
    assert result.exit_code == 2, result.output
    assert "No model server answers at http://127.0.0.1:9" in " ".join(result.output.split())


@pytest.mark.server
def test_two_turns_through_the_real_chain(
    vllm_server: RunningServer,
    sample_settings: QuarrySettings,
    sample_retriever: Retriever,
    embedder: Embedder,
) -> None:
    settings = vllm_server.settings.model_copy(update={"data_dir": sample_settings.data_dir})
    chain = Components(settings, embedders=[embedder]).chain(SAMPLE)
    questions = ["How do I change the port of the model server?", "And the chat page?"]
    results = run_chat_bench(chain, settings.server.base_url, questions)
    assert [r.turn for r in results] == [1, 2]
    for r in results:
        assert r.quarry_ttft_s is not None and r.quarry_ttft_s > 0
        assert r.server_ttft_s is not None and r.server_ttft_s > 0
        assert r.ratio is not None and r.ratio > 0
        assert r.prompt_tokens_queried > 0 and r.cache_hit_rate is not None
        assert r.answer_requests == 1, r  # exactly one request between the marks: the answer
        assert r.others_in_flight == 0, r  # the test server answers this test alone
    # The whole turn is the answer alone: no model call stands before it.
    assert [r.server_requests for r in results] == [1, 1]
