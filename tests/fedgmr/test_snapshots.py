"""A download in flight keeps the values it was dispatched with (``Simulation.step``: the engine holds
the global vector of the dispatch round instead of copying it; this test is what allows that)."""

import pytest
import torch

from fedgmr.simulation import Simulation
from tests.fedgmr.test_conformance import tiny_cfg


# Methods whose tiny runs carry downloads over; FIARSE+Aux+GMR hands out its own masked starts, the
# others the global vector itself.
@pytest.mark.parametrize(
    ("method", "global_start"),
    [
        ("fedgmr", True),
        ("fedasync", True),
        ("wo_buff", True),
        ("fixed_density", True),
        ("fiarse_aux_gmr", False),
    ],
)
@pytest.mark.parametrize("semantics", ["released", "clean"])
def test_a_download_in_flight_keeps_its_values(method, global_start, semantics):
    sim = Simulation(tiny_cfg(method, semantics=semantics))
    held: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # client -> (snapshot, its values then)
    checked = shared = 0
    while sim.step():
        for i in list(held):
            start, values = held[i]
            if i not in sim.snapshots or sim.snapshots[i][0] is not start:  # loaded by now
                assert torch.equal(start, values), f"client {i}: the download changed in flight"
                checked += 1
                del held[i]
        for i, (start, _) in sim.snapshots.items():
            if i not in held:
                held[i] = (start, start.clone())
                shared += start is sim.global_w
        for start, values in held.values():  # and every step while it waits
            assert torch.equal(start, values)
    assert checked >= 3, "expected several carried-over downloads"
    if global_start:
        assert shared >= 1, "expected a snapshot that is the live global vector when dispatched"
