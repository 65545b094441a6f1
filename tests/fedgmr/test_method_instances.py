"""Methods are built per run: the registered instances are shared by every run in a process, so per-run state
(width-sliced sub-model caches, FIARSE's mask memo) must live on a per-run copy (issue 9, item 2)."""

import dataclasses

import pytest

from fedgmr.methods.registry import METHODS
from fedgmr.simulation import Simulation
from tests.fedgmr.test_conformance import tiny_cfg


@pytest.mark.parametrize("method", ["heterofl", "fjord", "fiarse", "fedgmr"])
def test_each_simulation_has_its_own_method_instance(method):
    a, b = Simulation(tiny_cfg(method)), Simulation(tiny_cfg(method))
    registered = METHODS[method]
    assert a.method is not registered and b.method is not a.method
    assert a.method == registered  # same switches: a copy, not another method
    for sim in (a, b):
        sim.step()
        sim.step()
    fields = {f.name for f in dataclasses.fields(registered)}
    assert set(registered.__dict__) <= fields, "per-run state leaked onto the shared instance"


def test_one_instance_refuses_a_second_simulation():
    a, b = Simulation(tiny_cfg("heterofl")), Simulation(tiny_cfg("heterofl"))
    a.method.submodel(a, 0.5)
    with pytest.raises(RuntimeError, match="for_run"):
        a.method.submodel(b, 0.5)
