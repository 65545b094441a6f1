"""The paper's table metric (reference §9.3), checked by hand."""

import numpy as np
import pytest
from metrics import (
    half_window_for,
    paper_value,
    seed_summary,
    smoothing_for,
    t_interval,
    verdict,
    window_index,
)


def test_window_index_first_evaluation_after_budget():
    assert window_index([0, 10, 20, 30], 15) == 2
    assert window_index([0, 10, 20, 30], 20) == 3  # strictly greater
    assert window_index([0, 10, 20, 30], 99) == 3  # none after: the last index


def test_paper_value_is_mean_and_population_std_of_20_evaluations():
    # A paper-scale run (>= 100 evaluations) keeps the paper's window of 20 evaluations.
    times = np.arange(200) * 10.0
    accs = np.arange(200) / 1000.0
    mean, std, idx = paper_value(times, accs, budget=195.0)
    assert idx == 20
    window = accs[10:30]
    assert mean == pytest.approx(window.mean() * 100)
    assert std == pytest.approx(np.std(window) * 100)  # population std (ddof=0)
    assert mean == pytest.approx(1.95)


def test_paper_value_clamps_the_window_at_the_start():
    mean, _, idx = paper_value([0, 1, 2, 3], [0.1, 0.2, 0.3, 0.4], budget=0.5, half_window=10)
    assert idx == 1
    assert mean == pytest.approx(25.0)  # acc[0:11] = all four values


def test_short_runs_get_a_window_of_a_fifth_of_their_evaluations():
    assert [half_window_for(n) for n in (3, 20, 40, 99, 100, 400)] == [1, 2, 4, 9, 10, 10]
    times = np.arange(21) * 10.0
    accs = np.r_[np.linspace(0.1, 0.7, 15), np.full(6, 0.7)]  # rises from chance, flat at the end
    mean, _, idx = paper_value(times, accs, budget=175.0)
    assert idx == 18
    assert mean == pytest.approx(70.0)  # acc[16:20]: the end of the run, not the curve from chance
    assert smoothing_for(21, 20) == 2 and smoothing_for(500, 20) == 20


def test_t_interval_matches_hand_computation():
    mean, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert hi - mean == pytest.approx(4.303 * 1.0 / np.sqrt(3))  # t(0.975, 2 df) * s / sqrt(n)
    assert np.isnan(t_interval([5.0])[1])


def test_seed_summary_and_verdict(tmp_path):
    from metrics import run_values

    from tests.workflow.helpers import fixture_table

    per_run = run_values(fixture_table("main", ["FedGMR"], datasets=("femnist",), seeds=(0, 1, 2)))
    assert len(per_run) == 3
    summary = seed_summary(per_run)
    assert len(summary) == 1
    row = summary.iloc[0]
    assert row["n_seeds"] == 3
    assert row["value"] == pytest.approx(per_run["value"].mean())
    assert row["seed_std"] == pytest.approx(np.std(per_run["value"]))
    assert verdict(80.0, 80.5, 0.3).startswith("within")
    assert verdict(80.0, 81.0, 0.3).startswith("outside")
    assert verdict(80.0, None, 0.3) == "no paper value"
