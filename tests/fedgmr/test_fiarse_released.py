"""Released FIARSE (reference §7.6, B3, §4.4) step by step against a hand-written version of the released
threshold layers, and the start of a released run (first evaluation, first dispatch).

The hand-written rule: in every ``bern`` layer the forward mask is ``1[|w| ≥ θ_l]`` recomputed at every
step, θ_l the magnitude at ascending position ``floor(0.98 n_l)``; a ``Bias_*`` layer multiplies the bias
of each output unit by "the unit has a kept weight"; the mask is not differentiated (plain masked
gradient); plain SGD.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fedgmr.config import resolve_config
from fedgmr.methods.fiarse import floor_threshold, threshold_layers
from fedgmr.methods.width_sliced import WidthSliced


def _sim(gating: bool = True, seed: int = 0, local_steps: int = 3):
    """A released FIARSE simulation on tiny synthetic images (LEAF CNN at width 0.125), not yet stepped."""
    from fedgmr.simulation import Simulation

    cfg = resolve_config(
        {
            "method": "fiarse",
            "semantics": "released",
            "seed": seed,
            "dataset": {"name": "synthetic_image", "synthetic_train": 300, "synthetic_test": 20},
            "model": {"width": 0.125},
            "training": {"local_steps": local_steps, "batch_size": 10},
            "run": {"progress": False},
        }
    )
    sim = Simulation(cfg)
    sim.cfg["switches"]["bias_gating"] = gating  # the released bp layers gate biases (§4.4)
    return sim


def _floor(w: torch.Tensor) -> torch.Tensor:
    a = torch.sort(w.abs().flatten()).values
    return a[int(0.98 * a.numel())]


def _released_forward(p: dict, theta: dict, x: torch.Tensor) -> torch.Tensor:
    """The released bp LEAF CNN with bern layers: masks 1[|w| ≥ θ] of the current weights (θ fixed at
    load), biases of silent units gated."""

    def bern(name: str):
        w, b = p[name + ".weight"], p[name + ".bias"]
        kept = w.detach().abs() >= theta[name]
        return w * kept, b * kept.flatten(1).any(1)

    w1, b1 = bern("conv1")
    w2, b2 = bern("conv2")
    w3, b3 = bern("fc1")
    h = F.max_pool2d(F.relu(F.conv2d(x, w1, b1, padding=2)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2, padding=2)), 2)
    h = F.relu(F.linear(h.flatten(1), w3, b3))
    return F.linear(h, p["fc2.weight"], p["fc2.bias"])


def _released_client(sim, start: torch.Tensor, batches, lr: float) -> dict:
    p = {s.name: start[s.start : s.stop].view(s.shape).clone() for s in sim.layout.segments}
    theta = {name: _floor(p[name + ".weight"]) for name in ("conv1", "conv2", "fc1")}
    for x, y in batches:
        leaves = {k: v.requires_grad_(True) for k, v in p.items()}
        out = _released_forward(leaves, theta, x)
        loss = F.binary_cross_entropy_with_logits(out, F.one_hot(y, out.shape[1]).to(out.dtype))
        grads = torch.autograd.grad(loss, list(leaves.values()))
        p = {k: (v - lr * g).detach() for (k, v), g in zip(leaves.items(), grads)}
    return p


def _silent_conv1_channel(sim, start: torch.Tensor) -> int:
    seg = sim.layout.by_name["conv1.weight"]
    v = start[seg.start : seg.stop]
    kept = (v.abs() >= floor_threshold(v)).view(seg.shape[0], -1).any(1)
    assert not bool(kept.all()), "the test needs a conv1 channel without a kept weight"
    return int((~kept).nonzero()[0])


def test_released_client_update_equals_the_released_layer_rule(monkeypatch):
    sim = _sim()
    m = sim.method
    assert sim.momentum[0] is None and sim.trainer.weight_decay == 0  # plain SGD, as the reference here
    sim.step()  # round 0: dense training, then the first rebuild
    client = sim.densities.index(0.2)
    sim.net.payload_round[client] = 1  # dispatched at a non-tick round: the plain 2 % floor
    start, mask = m.client_start(sim, client)
    # Make a silent conv1 unit matter: a positive bias that a kept conv2 weight reads. Without bias
    # gating that channel emits relu(b) > 0 into conv2; the released forward emits nothing.
    c = _silent_conv1_channel(sim, start)
    start = start.clone()
    b1 = sim.layout.by_name["conv1.bias"]
    w2 = sim.layout.by_name["conv2.weight"]
    start[b1.start + c] = 0.5
    w2v = start[w2.start : w2.stop].view(w2.shape)
    w2v[0, c, 2, 2] = 1.0  # the largest |w| of conv2: always in the floor
    mask = mask.clone()
    mask[w2.start : w2.stop].view(w2.shape)[0, c, 2, 2] = True
    theta = m.thresholds(sim, client, start, mask)
    for seg in threshold_layers("leaf_cnn", sim.layout):  # θ_l is the hand floor of the received layer
        assert float(theta[seg.start]) == float(floor_threshold(start[seg.start : seg.stop]))

    captured: list = []
    real = WidthSliced.batches

    def record(s, i):
        if not captured:
            captured.extend(real(s, i))
        return iter(captured)  # a second training replays the same batches

    monkeypatch.setattr(WidthSliced, "batches", staticmethod(record))
    upload = m.train_gated(sim, client, start, mask, theta, surrogate=False)
    ref = _released_client(sim, start, captured, sim.client_lr[client])
    for s in sim.layout.segments:
        got = upload[s.start : s.stop].view(s.shape)
        assert torch.allclose(got, ref[s.name], atol=1e-6, rtol=1e-5), s.name
    # The silent unit's bias neither emitted nor learned, so the kept conv2 weight reading it saw a zero
    # input and did not move either.
    assert float(upload[b1.start + c]) == 0.5
    assert float(upload[w2.start : w2.stop].view(w2.shape)[0, c, 2, 2]) == 1.0
    # Without the gate (the state before issue 8's fix) the same update is not the released one.
    sim.cfg["switches"]["bias_gating"] = False
    ungated = m.train_gated(sim, client, start, mask, theta, surrogate=False)
    assert float(ungated[w2.start : w2.stop].view(w2.shape)[0, c, 2, 2]) != 1.0
    assert not torch.allclose(ungated, upload, atol=1e-6)


def test_released_first_evaluation_is_dense_and_round0_dispatch_takes_the_plain_floor():
    sim = _sim()
    m = sim.method
    # Before the first rebuild the released server's thresholds are 0: every weight passes.
    assert sim.masks is None
    assert torch.equal(m.eval_weights(sim, sim.global_w), sim.global_w)
    sim.step()  # round 0 (a tick): evaluation, then the first rebuild sets the thresholds
    assert sim.masks is not None
    ev = m.eval_weights(sim, sim.global_w)
    seg = sim.layout.by_name["fc1.weight"]
    assert float((ev[seg.start : seg.stop] != 0).float().mean()) <= 0.05
    client = sim.densities.index(0.1)
    start, mask = m.client_start(sim, client)
    interval = sim.cfg["schedule"]["interval"]
    for tau, jump in ((0, False), (interval, True)):
        sim.net.payload_round[client] = tau
        theta = m.thresholds(sim, client, start, mask)
        v = start[seg.start : seg.stop]
        t = floor_threshold(v)
        expected = floor_threshold(v[v.abs() >= t]) if jump else t
        assert float(theta[seg.start]) == float(expected), tau


@pytest.mark.parametrize("gating", [True, False])
def test_released_evaluation_gates_biases_of_silent_units(gating):
    sim = _sim(gating)
    sim.step()
    w = sim.global_w.clone()
    c = _silent_conv1_channel(sim, w)
    b1 = sim.layout.by_name["conv1.bias"]
    w[b1.start + c] = 0.5
    ev = sim.method.eval_weights(sim, w)
    assert float(ev[b1.start + c]) == (0.0 if gating else 0.5)
    seg = sim.layout.by_name["conv1.weight"]
    live = (ev[seg.start : seg.stop].view(seg.shape[0], -1) != 0).any(1)
    assert torch.equal(ev[b1.start : b1.stop][live], w[b1.start : b1.stop][live])


def test_clients_of_one_density_share_received_weights_and_thresholds():
    # Per-run memo (fiarse._Memo): the masked weights and their per-layer thresholds are built once per
    # (global vector, density), and equal what a fresh computation gives; a new global vector drops them.
    sim = _sim()
    m = sim.method
    sim.net.round = 1  # past the dense round 0 (B12)
    m.on_round(sim, 1, False)
    by_density: dict[float, list[int]] = {}
    for c, rho in enumerate(sim.densities):
        by_density.setdefault(rho, []).append(c)
    a, b = next(cs for rho, cs in by_density.items() if len(cs) > 1 and rho < 1.0)[:2]
    (sa, ma), (sb, mb) = m.client_start(sim, a), m.client_start(sim, b)
    assert sa is sb and ma is mb
    assert torch.equal(sa, sim.global_w * ma)
    ta, tb = m.thresholds(sim, a, sa, ma), m.thresholds(sim, b, sb, mb)
    assert ta is tb
    layers = threshold_layers("leaf_cnn", sim.layout)
    fresh = torch.zeros_like(sa)
    for seg in layers:
        fresh[seg.start : seg.stop] = _floor(sa[seg.start : seg.stop])
    assert torch.equal(ta, fresh)
    sim.global_w = sim.global_w * 1.5  # the server merged: everything derived is rebuilt
    m.on_round(sim, 2, False)
    sc, _ = m.client_start(sim, a)
    assert sc is not sa and torch.equal(sc, sim.global_w * sim.masks.mask(sim.densities[a]))
    assert not torch.equal(m.thresholds(sim, a, sc, sim.masks.mask(sim.densities[a])), ta)


@pytest.mark.parametrize("jump", [False, True])
def test_thresholds_of_every_received_start_are_the_global_vectors(jump):
    # thresholds() takes the floors of the global vector for every start received now: exact, because a
    # mask of the current rebuild keeps each layer's floor and only zeroes weights below it. Checked
    # against the floors of each start computed directly, with a layer holding many exact zeros.
    sim = _sim()
    m = sim.method
    first, seg = threshold_layers("leaf_cnn", sim.layout)[:2]
    sim.global_w[seg.start : seg.start + seg.numel // 2] = 0.0
    sim.global_w[first.start + 1 : first.stop] = 0.0  # a floor of 0: more than 98 % of the layer is 0
    sim.net.round = 1
    m.on_round(sim, 1, False)
    layers = threshold_layers("leaf_cnn", sim.layout)
    starts = {}
    for c, rho in enumerate(sim.densities):
        start, mask = m.client_start(sim, c)
        starts[rho] = (c, start, mask)
    assert len(starts) > 2 and any(mask is None for _, _, mask in starts.values())
    if jump:  # a dispatch at an evaluation tick takes the floor inside the floor
        sim.net.payload_round = [sim.cfg["schedule"]["interval"]] * len(sim.densities)
    shared = None
    for c, start, mask in starts.values():
        theta = m.thresholds(sim, c, start, mask)
        assert torch.equal(theta, m._floor_thresholds(start, layers, jump))
        shared = theta if shared is None else shared
        assert theta is shared  # one selection per layer, whatever the density
    assert float(shared[first.start]) == 0.0 and float(shared[seg.start]) > 0.0
