"""bench/proxy_load.py's summary on hand-built rounds: throughput, TTFT, inter-token latency, ratios."""

import pytest

from bench.proxy_load import Round, Stream, markdown, paired_throughput_ratios, ratios, summarise


def stream(sent: float, first: float, tokens: int, gap: float) -> Stream:
    """A stream sent at `sent` whose `tokens` text chunks arrive from `first` on, `gap` apart."""
    times = [first + i * gap for i in range(tokens)]
    return Stream(sent=sent, chunk_times=times, completion_tokens=tokens, finish_reason="length")


def test_one_path_summary_pools_its_rounds():
    rounds = [
        Round("direct", 2, wall_s=1.0, streams=[stream(0, 0.1, 4, 0.1), stream(0, 0.3, 4, 0.1)],
              proxy_cpu_s=0.0, vllm_cpu_s=0.8),
        Round("direct", 2, wall_s=3.0, streams=[stream(0, 0.2, 4, 0.3), stream(0.1, 0.5, 4, 0.3)],
              proxy_cpu_s=0.02, vllm_cpu_s=1.6),
    ]  # fmt: skip
    summary = summarise(rounds)
    assert summary["requests"] == 4 and summary["tokens"] == 16
    assert summary["tokens_per_s"] == pytest.approx(16 / 4.0)  # all tokens over all wall time
    # TTFTs 0.1, 0.3, 0.2, 0.4 s (the last stream was sent at 0.1)
    assert summary["ttft_p50_ms"] == pytest.approx(250) and summary["ttft_mean_ms"] == pytest.approx(250)
    # gaps: six of 0.1 s and six of 0.3 s
    assert summary["itl_p50_ms"] == pytest.approx(200) and summary["itl_mean_ms"] == pytest.approx(200)
    assert summary["ran_to_max_tokens"] == 4
    assert summary["proxy_cpu_ms_per_request"] == pytest.approx(5)
    assert summary["vllm_cpu_ms_per_request"] == pytest.approx(600)


def test_a_stream_without_text_has_no_first_token_and_no_gaps():
    empty = Stream(sent=0.0, completion_tokens=0, finish_reason="stop")
    summary = summarise([Round("reverie", 2, 1.0, [stream(0, 0.5, 3, 0.25), empty], 0.0, 0.0)])
    assert summary["ttft_p50_ms"] == pytest.approx(500) and summary["itl_p50_ms"] == pytest.approx(250)
    assert summary["requests"] == 2 and summary["ran_to_max_tokens"] == 1


def test_ratios_are_reverie_over_direct_and_pairs_follow_the_run_order():
    direct = {"tokens_per_s": 100.0, "ttft_p50_ms": 200.0, "ttft_mean_ms": 250.0, "itl_p50_ms": 50.0,
              "itl_mean_ms": None}
    reverie = {"tokens_per_s": 97.0, "ttft_p50_ms": 210.0, "ttft_mean_ms": 250.0, "itl_p50_ms": 51.0,
               "itl_mean_ms": 1.0}
    assert ratios(direct, reverie) == pytest.approx(
        {"tokens_per_s": 0.97, "ttft_p50_ms": 1.05, "ttft_mean_ms": 1.0, "itl_p50_ms": 1.02}
    )  # no ratio where the direct figure is missing

    def timed(path: str, wall_s: float) -> Round:
        return Round(path, 1, wall_s, [stream(0, 0.1, 10, 0.1)], 0.0, 0.0)

    # alternating: direct first on even rounds, Reverie first on odd ones
    rounds = [timed("direct", 1.0), timed("reverie", 1.25), timed("reverie", 2.0), timed("direct", 1.0)]
    assert paired_throughput_ratios(rounds) == pytest.approx([0.8, 0.5])


def test_markdown_has_a_row_per_concurrency():
    point = {
        "direct": {"tokens_per_s": 100.0, "ttft_p50_ms": 200.0, "itl_p50_ms": 50.0,
                   "proxy_cpu_ms_per_request": 2.5},
        "reverie": {"tokens_per_s": 98.0, "ttft_p50_ms": 204.0, "itl_p50_ms": 50.5,
                    "proxy_cpu_ms_per_request": 12.5},
        "ratios": {"tokens_per_s": 0.98, "ttft_p50_ms": 1.02, "ttft_mean_ms": 1.01, "itl_p50_ms": 1.01},
        "paired_throughput_ratios": [0.97, 0.99, 0.98],
    }
    table = markdown({"concurrency": {"8": point}})
    assert table.splitlines()[2] == (
        "| 8 | **0.980** | **1.020** | 1.010 | 1.010 | 100.0 / 98.0 | 200 / 204 | 50.0 / 50.5 "
        "| 0.980 (0.970-0.990) | 10.0 |"
    )
