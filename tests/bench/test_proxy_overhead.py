"""bench/proxy_overhead.py's summary on hand-made times to first token."""

import pytest

from bench.proxy_overhead import summary


def test_the_added_cost_is_reveries_median_less_the_upstreams_and_the_median_of_the_pairs():
    direct = [0.010, 0.012, 0.011, 0.030, 0.010]  # one slow direct request
    reverie = [0.014, 0.015, 0.016, 0.020, 0.013]
    result = summary(direct, reverie)
    assert result["requests_per_path"] == 5
    assert result["direct_ttft_p50_ms"] == pytest.approx(11.0) and result["reverie_ttft_p50_ms"] == pytest.approx(15.0)
    assert result["direct_ttft_p90_ms"] == pytest.approx(30.0) and result["reverie_ttft_p90_ms"] == pytest.approx(20.0)
    assert result["added_p50_ms"] == pytest.approx(4.0)
    # pairs: +4, +3, +5, -10, +3 ms -> median +3
    assert result["added_paired_median_ms"] == pytest.approx(3.0)
