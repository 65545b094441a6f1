"""The engine's work counters, which `benchmarks/engine.py` turns into per-method compute floors: every
local SGD step is counted once, under the density of the model that really ran it."""

import pytest

from fedgmr.methods.registry import METHODS
from fedgmr.runner import run
from tests.fedgmr.test_conformance import tiny_cfg

WIDTH_SLICED = {"heterofl", "fedrolex", "fjord"}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_local_step_counted_once_by_model_density(method, tmp_path):
    cfg = tiny_cfg(method, schedule={"interval": 3, "max_rounds": 4})
    sim = run(cfg, tmp_path / "run", progress=False)
    c = sim.counters
    # Each training of a client is K local steps (FjORD: K steps over its width schedule).
    assert c["steps"] == sim.local_steps * sum(sim.net.train_number) > 0
    assert c["steps"] == sum(c["steps_by_density"].values())
    densities = set(c["steps_by_density"])
    assert all(0.0 < d <= 1.0 for d in densities)
    base = method.split("_")[0]
    if base in WIDTH_SLICED and not method.endswith("_gmr"):
        # Physically smaller sub-models at the heterogeneity "high" tiers (0.05 ... 1.0).
        assert min(densities) < 1.0, c
    elif base not in WIDTH_SLICED:
        assert densities == {1.0}, c  # masked methods train the full-size model
