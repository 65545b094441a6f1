"""The whole engine reproduces the reference round lengths of §3.9 (CIFAR sizes, high heterogeneity).

The network module is tested cell by cell with stub training; this checks that the event loop drives it
the same way (densities passed, ticks, start-up) when real local training runs in between.
"""

import pytest

from fedgmr.config import resolve_config
from fedgmr.simulation import Simulation

# (method, reference seconds per round, what the reference row is)
CASES = [
    ("wo_gmr", 12.34, "initial densities, async, IMS"),
    ("wo_ims", 15.49, "initial densities, async, no IMS"),  # restoration idle: patience is huge
    ("wo_asyn", 11.85, "initial densities, sync, IMS"),
    ("fedasync", 12.34, "all clients rho = 1, async"),
    ("fedavg", 191.9, "all clients rho = 1, sync"),
]


@pytest.mark.parametrize("method, expected, row", CASES)
def test_engine_round_length_matches_reference(method, expected, row):
    rounds = 100
    cfg = resolve_config(
        {
            "method": method,
            "seed": 0,
            "dataset": {"name": "synthetic_image", "synthetic_train": 200, "synthetic_test": 20},
            "model": {"width": 0.0625},
            "network": {"model_size_mb": 37.204},
            "training": {"local_steps": 1, "batch_size": 2},
            "schedule": {"interval": 50, "max_rounds": rounds},
            "restoration": {"patience": 10_000},
            "run": {"progress": False},
        }
    )
    sim = Simulation(cfg)
    while sim.step():
        pass
    t = {m["round"]: m["virtual_time"] for m in sim.metrics}
    per_round = (t[rounds] - t[0]) / rounds
    assert abs(per_round - expected) / expected < 0.02, (row, per_round)
