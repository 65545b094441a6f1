"""`released` and `clean` differ exactly in the named switches (design §4), and each switch changes the
behaviour it names."""

import copy

import pytest
import torch

from fedgmr.aggregation import BY_VALUE, cover_mask
from fedgmr.config import SWITCH_VALUES, resolve_config
from fedgmr.simulation import Simulation

BASE = {
    "dataset": {"name": "synthetic_image", "partition": "iid", "synthetic_train": 400, "synthetic_test": 50},
    "model": {"width": 0.125},
    "training": {"local_steps": 1, "batch_size": 8},
    "schedule": {"interval": 3, "max_rounds": 12},
    "run": {"progress": False},
}


def cfg(**kw):
    raw = copy.deepcopy(BASE)
    for k, v in kw.items():
        if isinstance(v, dict):
            raw.setdefault(k, {}).update(v)
        else:
            raw[k] = v
    return resolve_config(raw)


def test_switch_tables_differ_in_every_switch():
    rel, cln = SWITCH_VALUES["released"], SWITCH_VALUES["clean"]
    assert rel.keys() == cln.keys()
    assert all(rel[k] != cln[k] for k in rel)


@pytest.mark.parametrize("semantics", ["released", "clean"])
def test_semantics_sets_all_switches_and_one_can_be_overridden(semantics):
    c = cfg(semantics=semantics)
    expect = dict(SWITCH_VALUES[semantics])
    if expect["standard_clients"] == "released":
        expect["standard_clients"] = "tier"  # synthetic data uses the level's own shares
    assert c["switches"] == expect
    c2 = cfg(semantics=semantics, switches={"phantom_arrivals": semantics == "clean"})
    assert c2["switches"]["phantom_arrivals"] is (semantics == "clean")
    assert {k for k in c2["switches"] if c2["switches"][k] != c["switches"][k]} == {"phantom_arrivals"}


def _prunable_density(sim, vec):
    p = sim.layout.prunable
    return float((vec[p] != 0).float().mean())


def test_dense_round0_b12():
    rel = Simulation(cfg(semantics="released"))
    rel.step()  # round 0
    cln = Simulation(cfg(semantics="clean"))
    cln.step()
    # client 9 is a 0.05-tier client
    assert _prunable_density(rel, rel.uploads[9]) > 0.9
    assert _prunable_density(cln, cln.uploads[9]) < 0.06


def test_momentum_leak_b6_only_in_released():
    text = {
        "dataset": {"name": "synthetic_text", "synthetic_train": 300, "synthetic_test": 40},
        "training": {"local_steps": 2, "batch_size": 4},
    }
    out = {}
    for sem in ("released", "clean"):
        sim = Simulation(cfg(semantics=sem, **text))
        assert sim.cfg["training"]["momentum"] == 0.9
        for _ in range(5):  # round 0 dense (released), tick masks, then masked rounds
            sim.step()
        mask = sim.masks.mask(sim.densities[9])
        out[sem] = int((sim.uploads[9][~mask] != 0).sum())
    assert out["released"] > 0  # masked coordinates carry momentum drift (B6)
    assert out["clean"] == 0


def test_gmr_signal_validation_split_b14():
    rel = Simulation(cfg(semantics="released"))
    cln = Simulation(cfg(semantics="clean"))
    assert all(len(v) == 0 for v in rel.data.val)
    assert all(len(v) > 0 for v in cln.data.val)
    for tr, va in zip(cln.data.clients, cln.data.val):
        assert not set(tr.tolist()) & set(va.tolist())  # held out of the client's training data


def test_fedavg_femnist_half_b19():
    assert (
        cfg(method="fedavg", semantics="released", dataset={"name": "fmnist", "root": "x"})["restoration"][
            "min_density"
        ]
        == 0.5
    )
    assert (
        cfg(method="fedavg", semantics="clean", dataset={"name": "fmnist", "root": "x"})["restoration"][
            "min_density"
        ]
        == 1.0
    )


def test_value_coverage_counts_nonzero_values():
    sim = Simulation(cfg(semantics="released"))
    sim.step()
    up, cov = sim.uploads[3], sim.coverage[3]
    assert cov == BY_VALUE and torch.equal(cover_mask(up, cov), up != 0)
    cln = Simulation(cfg(semantics="clean"))
    trained_with = cln.masks.mask(cln.densities[3])  # masks exist before round 0 in clean semantics
    cln.step()
    assert torch.equal(cln.coverage[3], trained_with)
