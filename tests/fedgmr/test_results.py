import math

import numpy as np

from fedgmr.results import table_value, time_to_accuracy


def test_table_value_window_around_budget():
    times = np.arange(40) * 10.0  # evaluation k at time 10k
    accs = np.arange(40) / 100.0
    # first time > 195 is index 20 -> window 10..29 -> mean acc (10+...+29)/20 = 19.5 (%)
    mean, std = table_value(times, accs, budget=195)
    assert mean == 19.5
    assert abs(std - np.std(np.arange(10, 30))) < 1e-12


def test_table_value_budget_past_end_uses_last_index():
    mean, _ = table_value([0, 1, 2], [0.1, 0.2, 0.3], budget=99)
    # last index 2 -> window [0, 12) -> all three
    assert abs(mean - 20.0) < 1e-12


def test_time_to_accuracy():
    assert time_to_accuracy([0, 5, 9], [0.1, 0.6, 0.7], 0.55) == 5
    assert math.isnan(time_to_accuracy([0, 5], [0.1, 0.2], 0.9))
