"""Released FIARSE's steps on the kept weights (``fedgmr.methods.fiarse_kept``) against the dense steps
they replace: the same upload, bit for bit except the sign of a zero outside the mask (the module
docstring says why no result can see it), through weights falling under their threshold mid-training,
closing bias gates, full-width clients and a non-finite gradient."""

from __future__ import annotations

import pytest
import torch

from fedgmr.config import resolve_config
from fedgmr.methods import fiarse_kept
from fedgmr.methods.width_sliced import WidthSliced


def _sim(gating: bool):
    from fedgmr.simulation import Simulation

    cfg = resolve_config(
        {
            "method": "fiarse",
            "semantics": "released",
            "seed": 3,
            "dataset": {"name": "synthetic_image", "synthetic_train": 300, "synthetic_test": 20},
            "model": {"width": 0.125},
            "training": {"local_steps": 4, "batch_size": 10},
            "run": {"progress": False},
        }
    )
    sim = Simulation(cfg)
    sim.cfg["switches"]["bias_gating"] = gating
    sim.step()  # round 0: dense training, then the first rebuild of the threshold masks
    return sim


def _replay(monkeypatch, batches: list) -> None:
    real = WidthSliced.batches

    def record(sim, client):
        if not batches:
            batches.extend(real(sim, client))
        return iter(list(batches))

    monkeypatch.setattr(WidthSliced, "batches", staticmethod(record))


def _both(monkeypatch, sim, client, lr=None, poison=None):
    """(kept-path upload, dense upload, whether the kept path ran) for one client on the same batches."""
    m = sim.method
    if lr is not None:
        sim.client_lr[client] = lr
    start, mask = m.client_start(sim, client)
    theta = m.thresholds(sim, client, start, mask)
    batches: list = []
    _replay(monkeypatch, batches)
    if poison is not None:
        list(WidthSliced.batches(sim, client))  # record them
        x, y = batches[poison]
        batches[poison] = (torch.full_like(x, float("nan")), y)
    ran = []
    real = fiarse_kept.train_kept
    monkeypatch.setattr(fiarse_kept, "train_kept", lambda *a: ran.append(real(*a)) or ran[-1])
    kept = m.train_gated(sim, client, start, mask, theta, surrogate=False)
    monkeypatch.setattr(fiarse_kept, "applies", lambda *a: False)
    dense = m.train_gated(sim, client, start, mask, theta, surrogate=False)
    monkeypatch.undo()
    return kept, dense, ran


def _same_bits_but_zero_signs(kept: torch.Tensor, dense: torch.Tensor) -> None:
    a, b = kept.view(torch.int32), dense.view(torch.int32)
    differ = a != b
    # Outside the mask only: a -0.0 the dense step turned into +0.0.
    assert bool((kept[differ] == 0).all()) and bool((dense[differ] == 0).all())
    assert bool(torch.signbit(kept[differ]).all()) and not bool(torch.signbit(dense[differ]).any())


@pytest.mark.parametrize("gating", [True, False])
def test_kept_steps_give_the_dense_upload(monkeypatch, gating):
    sim = _sim(gating)
    assert fiarse_kept.applies(sim.trainer, sim.momentum[0], False, False)
    for rho in sorted(set(sim.densities)):
        client = sim.densities.index(rho)
        kept, dense, ran = _both(monkeypatch, sim, client)
        assert ran == [True], rho  # the kept path did the whole training
        assert not torch.equal(kept, sim.global_w)  # it trained
        _same_bits_but_zero_signs(kept, dense)


def test_weights_falling_under_their_threshold_close_gates_as_the_dense_steps_do(monkeypatch):
    sim = _sim(True)
    client = sim.densities.index(min(sim.densities))
    closed = []
    real = fiarse_kept.gate_biases_by_value_
    monkeypatch.setattr(
        fiarse_kept, "gate_biases_by_value_", lambda m, layers: closed.append(1) or real(m, layers)
    )
    start, mask = sim.method.client_start(sim, client)
    theta = sim.method.thresholds(sim, client, start, mask)
    before = fiarse_kept.released_mask_(
        start.clone(),
        theta,
        mask.float(),
        sim.method.bias_gated(sim),
        [torch.empty_like(start), torch.empty_like(start)],
    ).clone()
    # A large step size moves kept weights across their thresholds within the training.
    kept, dense, ran = _both(monkeypatch, sim, client, lr=3.0)
    assert ran == [True]
    assert len(closed) > 1  # the mask changed after a step (the first call builds it)
    after = fiarse_kept.released_mask_(
        dense.clone(),
        theta,
        mask.float(),
        sim.method.bias_gated(sim),
        [torch.empty_like(start), torch.empty_like(start)],
    )
    assert int(after.sum()) < int(before.sum())
    _same_bits_but_zero_signs(kept, dense)


def test_a_non_finite_gradient_hands_the_training_back_to_the_dense_steps(monkeypatch):
    sim = _sim(True)
    client = sim.densities.index(max(d for d in sim.densities if d < 1.0))
    kept, dense, ran = _both(monkeypatch, sim, client, poison=1)
    assert ran == [False]
    assert bool(dense.isnan().any())  # the dense step spreads NaN outside the mask, as released
    nan = dense.isnan()
    assert torch.equal(kept.isnan(), nan)
    _same_bits_but_zero_signs(kept[~nan], dense[~nan])


def test_not_taken_with_momentum_weight_decay_or_remasking():
    sim = _sim(True)
    tr, mom = sim.trainer, torch.zeros(3)
    assert not fiarse_kept.applies(tr, None, True, False)  # re-masking
    assert not fiarse_kept.applies(tr, None, False, True)  # clean: the surrogate gradient
    tr.weight_decay = 1e-4
    assert not fiarse_kept.applies(tr, None, False, False)
    tr.weight_decay, tr.momentum = 0.0, 0.9
    assert not fiarse_kept.applies(tr, mom, False, False)
    assert fiarse_kept.applies(tr, None, False, False)  # no momentum buffer: plain SGD
