"""Released FIARSE's steps on the kept weights (``fedgmr.methods.fiarse_kept``) against the dense steps
they replace: the same upload, bit for bit except the sign of a zero outside the mask (the module
docstring says why no result can see it), through weights falling under their threshold mid-training,
closing bias gates, full-width clients and a non-finite gradient."""

from __future__ import annotations

import pytest
import torch

from fedgmr.methods import fiarse_kept
from fedgmr.methods.width_sliced import WidthSliced
from tests.fedgmr.test_fiarse_released import _sim as released_sim


def _sim(gating: bool):
    sim = released_sim(gating, seed=3, local_steps=4)
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
    changes = []
    real = fiarse_kept._dense
    monkeypatch.setattr(fiarse_kept, "_dense", lambda *a: changes.append(a[-1]) or real(*a))
    start, mask = sim.method.client_start(sim, client)
    theta = sim.method.thresholds(sim, client, start, mask)
    layers = sim.method.bias_gated(sim)

    def n_kept(w):
        return int(
            fiarse_kept.released_mask_(w, theta, mask.float(), layers, [torch.empty_like(w)] * 2).sum()
        )

    # A large step size moves kept weights across their thresholds within the training.
    kept, dense, ran = _both(monkeypatch, sim, client, lr=3.0)
    assert ran == [True]
    assert changes and all(c == layers for c in changes)  # the kept path rebuilt its mask, gates included
    assert n_kept(dense) < n_kept(start.clone())
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


def test_a_unit_losing_its_last_kept_weight_stops_its_bias_by_hand():
    """Linear(2, 2), loss Σ out ⊙ y, so dL/dW_ij = y_i x_j m_ij and dL/db_i = y_i · gate_i. Unit 0's only
    kept weight (0.5, θ = 0.45) falls to 0.4 in the first step, which closes its bias gate: b0 moves once."""
    from torch import nn

    from fedgmr.bias_gating import gated_layers
    from fedgmr.flat import flatten_module
    from fedgmr.training import Trainer

    model = nn.Sequential(nn.Linear(2, 2))
    layout, work, _ = flatten_module(model, ["0.weight"])
    tr = Trainer(model, layout, work, lambda out, y: (out * y).sum(), 0.0, 0.0)
    layers = [(g.weight, g.bias) for g in gated_layers(layout)]
    assert len(layers) == 1
    wseg, bseg = layout.by_name["0.weight"], layout.by_name["0.bias"]
    start = torch.zeros(layout.numel)
    start[wseg.start : wseg.stop] = torch.tensor([0.5, 0.1, 0.9, 0.8])
    start[bseg.start : bseg.stop] = torch.tensor([0.3, 0.2])
    theta = torch.zeros_like(start)
    theta[wseg.start : wseg.stop] = 0.45
    batches = [(torch.ones(1, 2), torch.tensor([[1.0, -1.0]]))] * 3
    w = start.clone()
    plan = fiarse_kept.plan(tr, start, theta, None, layers)
    assert plan.kept.tolist() == [wseg.start, wseg.start + 2, wseg.start + 3, bseg.start, bseg.start + 1]
    assert fiarse_kept.train_kept(tr, w, plan, layers, iter(batches), 0.1, lambda: None)
    expect_w = [0.5 - 0.1, 0.1, 0.9 + 0.3, 0.8 + 0.3]
    expect_b = [0.3 - 0.1, 0.2 + 0.3]
    assert torch.allclose(w[wseg.start : wseg.stop], torch.tensor(expect_w))
    assert torch.allclose(w[bseg.start : bseg.stop], torch.tensor(expect_b))


def test_clients_of_one_density_share_one_plan(monkeypatch):
    sim = _sim(True)
    m = sim.method
    made = []
    real = fiarse_kept.plan
    monkeypatch.setattr(fiarse_kept, "plan", lambda *a: made.append(1) or real(*a))
    rho = next(d for d in sim.densities if d < 1.0 and sim.densities.count(d) > 1)
    clients = [i for i, d in enumerate(sim.densities) if d == rho][:2]
    for client in clients:
        start, mask = m.client_start(sim, client)
        m.train_gated(sim, client, start, mask, m.thresholds(sim, client, start, mask), surrogate=False)
    assert len(made) == 1
    sim.cfg["switches"]["bias_gating"] = False  # other gates: another plan
    start, mask = m.client_start(sim, clients[0])
    m.train_gated(sim, clients[0], start, mask, m.thresholds(sim, clients[0], start, mask), surrogate=False)
    assert len(made) == 2


@pytest.mark.parametrize("tick", [False, True])
def test_every_density_plans_the_same_positions_as_the_shared_plan(monkeypatch, tick):
    # The LEAF CNN thresholds every prunable layer, so a start received now keeps the same positions at
    # every density: one plan serves them all. Each density's own plan must equal it.
    sim = _sim(True)
    m, tr = sim.method, sim.trainer
    layers = m.bias_gated(sim)
    made = []
    real = fiarse_kept.plan
    monkeypatch.setattr(fiarse_kept, "plan", lambda *a: made.append(1) or real(*a))
    interval = sim.cfg["schedule"]["interval"]
    for rho in sorted(set(sim.densities)):
        client = sim.densities.index(rho)
        sim.net.payload_round[client] = interval if tick else 1  # a tick raises the thresholds (jump)
        start, mask = m.client_start(sim, client)
        theta = m.thresholds(sim, client, start, mask)
        m.train_gated(sim, client, start, mask, theta, surrogate=False)
        shared = next(iter(m._memo(sim).plans.values()))[1]
        own = real(tr, start, theta, mask, layers)
        assert torch.equal(own.kept, shared.kept), rho
        for a, b in ((own.m_k, shared.m_k), (own.pre_k, shared.pre_k), (own.theta_k, shared.theta_k)):
            assert torch.equal(a, b), rho
        assert own.fmask_k is None or bool((own.fmask_k == 1).all())
    assert len(made) == 1 and len(m._memo(sim).plans) == 1
