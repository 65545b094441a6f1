"""FIARSE (reference §7.6, B3): the surrogate gradient against finite differences of its definition,
thresholds, and what a client trains."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from fedgmr.config import resolve_config
from fedgmr.methods.fiarse import ThresholdMask, floor_threshold, gated, threshold_layers, topk_threshold


def _phi(s: torch.Tensor, theta: float) -> torch.Tensor:
    """The smooth mask whose derivative is the surrogate: (s - θ) / (s + θ)."""
    return (s - theta) / (s + theta)


def test_surrogate_matches_finite_differences_of_its_definition():
    theta = 0.3
    s = torch.tensor([0.05, 0.2, 0.3, 0.45, 1.0, 2.5], dtype=torch.float64, requires_grad=True)
    out = ThresholdMask.apply(s, torch.tensor(theta, dtype=torch.float64))
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    (grad,) = torch.autograd.grad(out.sum(), s)
    h = 1e-6
    sd = s.detach()
    fd = (_phi(sd + h, theta) - _phi(sd - h, theta)) / (2 * h)
    kept = sd >= theta
    assert torch.allclose(grad[kept], fd[kept], rtol=1e-6)
    assert torch.all(grad[~kept] == 0)
    # hand value at s = θ: 2θ / (2θ)² = 1 / (2θ)
    assert abs(float(grad[2]) - 1 / (2 * theta)) < 1e-12


def test_gated_weight_gradient_with_and_without_surrogate():
    theta = torch.tensor(0.5, dtype=torch.float64)
    w = torch.tensor([-2.0, -0.4, 0.1, 0.5, 1.5], dtype=torch.float64, requires_grad=True)
    (g_clean,) = torch.autograd.grad(gated(w, theta, True).sum(), w)
    a = w.detach().abs()
    expected = (a >= 0.5).double() * (1 + a * 2 * 0.5 / (a + 0.5) ** 2)  # d(w·m(|w|))/dw
    assert torch.allclose(g_clean, expected)
    assert g_clean.tolist()[1:3] == [0.0, 0.0]
    (g_rel,) = torch.autograd.grad(gated(w, theta, False).sum(), w)
    assert g_rel.tolist() == [1.0, 0.0, 0.0, 1.0, 1.0]  # released: plain masked gradient (B3)
    assert gated(w, theta, False).tolist() == [-2.0, 0.0, 0.0, 0.5, 1.5]


def test_thresholds():
    v = torch.arange(1.0, 101.0).flip(0)
    assert float(floor_threshold(v)) == 99.0  # ascending position floor(0.98 * 100) = 98 -> 99
    assert float(floor_threshold(torch.arange(1.0, 11.0))) == 10.0  # floor(9.8) = 9 -> top 1
    w = torch.tensor([1.0, -2.0, 3.0, -4.0, 5.0, 6.0, -7.0, 8.0, 9.0, 10.0, 100.0])
    prunable = torch.tensor([True] * 10 + [False])
    assert float(topk_threshold(w, prunable, 0.3)) == 8.0  # 3 largest |w| of the prunable ones
    assert float(topk_threshold(w, prunable, 0.01)) == 10.0  # at least one weight
    assert float(topk_threshold(w, prunable, 1.0)) == 1.0


def _sim(semantics: str):
    from fedgmr.simulation import Simulation

    cfg = resolve_config(
        {
            "method": "fiarse",
            "semantics": semantics,
            "seed": 0,
            "dataset": {"name": "synthetic_image", "synthetic_train": 300, "synthetic_test": 20},
            "model": {"width": 0.125},
            "training": {"local_steps": 2, "batch_size": 10},
            "run": {"progress": False},
        }
    )
    return Simulation(cfg)


def _clean_client():
    """A clean FIARSE simulation in its first iteration, its density-0.1 client and what it receives."""
    sim = _sim("clean")
    m = sim.method
    sim.net.begin_iteration()
    client = sim.densities.index(0.1)
    start, mask = m.client_start(sim, client)
    return sim, m, client, start, mask


def test_clean_client_keeps_its_top_k_and_trains_only_kept_weights():
    sim, m, client, start, mask = _clean_client()
    p = sim.layout_prunable
    assert abs(int((mask & p).sum()) - int(0.1 * int(p.sum()))) <= 1  # model-wise top-k
    kept_min = sim.global_w[mask & p].abs().min()
    assert torch.all(sim.global_w[~mask & p].abs() <= kept_min)
    up, cover = m.local_update(sim, client, start, mask)
    assert torch.equal(cover, mask)
    assert torch.all(up[~mask] == 0)
    assert not torch.equal(up[mask & p], start[mask & p])


def test_released_threshold_layers_compute_with_two_percent():
    sim = _sim("released")
    m = sim.method
    assert [s.name for s in threshold_layers("leaf_cnn", sim.layout)] == [
        "conv1.weight",
        "conv2.weight",
        "fc1.weight",
    ]
    assert [s.name for s in threshold_layers("vgg11", sim.layout)] == [
        "fc1.weight"
    ]  # VGG rule: FC layers only
    m.rebuild_masks(sim)  # the server's thresholds exist from the first rebuild on (dense before it)
    ev = m.eval_weights(sim, sim.global_w)
    for seg in sim.layout.layers:
        frac = float((ev[seg.start : seg.stop] != 0).float().mean())
        assert frac <= 0.05, (seg.name, frac)  # about 2 % (at least one weight) computes


def _autograd_surrogate(sim, w, theta, fmask, gate, x, y):
    """The surrogate gradient as autograd gives it through the flat vector's views (the definition)."""
    from torch.func import functional_call

    leaf = w.detach().requires_grad_(True)
    eff = gated(leaf, theta, True)
    for f in (fmask, gate):
        if f is not None:
            eff = eff * f
    params = [s for s in sim.layout.segments if not s.is_buffer]
    out = functional_call(sim.model, {s.name: eff[s.start : s.stop].view(s.shape) for s in params}, (x,))
    (grad,) = torch.autograd.grad(sim.trainer.loss(out, y), leaf)
    return grad


def test_clean_surrogate_gradient_has_the_bits_of_autograd():
    from fedgmr.methods.fiarse import _surrogate_grad
    from fedgmr.methods.width_sliced import WidthSliced

    sim, m, client, start, mask = _clean_client()
    theta = m.thresholds(sim, client, start, mask)
    assert mask is not None and theta is not None
    w = start.clone()
    # The corner cases of the chain rule: exact zeros of both signs, weights exactly at the threshold.
    g = torch.Generator().manual_seed(0)
    pick = torch.randint(0, w.numel(), (300,), generator=g)
    w[pick[:100]] = 0.0
    w[pick[100:200]] = -0.0
    w[pick[200:250]] = theta[pick[200:250]]
    w[pick[250:]] = -theta[pick[250:]]
    x, y = next(iter(WidthSliced.batches(sim, client)))
    fmask = mask.float()
    gate = torch.ones_like(w)
    for seg in sim.layout.segments:
        if seg.name.endswith("bias"):
            gate[seg.start : seg.stop] = (torch.rand(seg.numel, generator=g) < 0.7).float()
    for f, gt in ((fmask, gate), (fmask, None), (None, None)):
        ref = _autograd_surrogate(sim, w, theta, f, gt, x, y)
        scratch = [torch.full_like(w, float("nan")) for _ in range(5)]  # what they held must not matter
        got = _surrogate_grad(sim.trainer, w, theta, f, gt, x, y, torch.zeros_like(w), scratch)
        assert torch.equal(got.view(torch.int32), ref.view(torch.int32))
        assert bool((got != 0).any())


def test_surrogate_gradient_keeps_autograds_sign_of_zero():
    """Autograd sums the gradients of the flat vector's per-parameter views, so a parameter's -0.0 arrives
    as +0.0 (and keeps its sign with a single parameter); the written-out chain rule does the same."""
    from torch import nn

    from fedgmr.flat import flatten_module
    from fedgmr.methods.fiarse import _surrogate_grad
    from fedgmr.training import Trainer

    class Toy(nn.Module):
        def __init__(self, n_params: int):
            super().__init__()
            self.ps = nn.ParameterList([nn.Parameter(torch.ones(3)) for _ in range(n_params)])

        def forward(self, x):
            return sum(p * x for p in self.ps)

    x = torch.tensor([-0.0, 2.0, -0.0])  # dL/dp = x: exact zeros of negative sign
    for n_params in (1, 2):
        model = Toy(n_params)
        layout, work, _ = flatten_module(model, [])
        tr = Trainer(model, layout, work, lambda out, y: (out * y).sum(), 0.0, 0.0)
        w = torch.full((3 * n_params,), 0.5)
        theta = torch.full_like(w, 0.25)
        ref = _autograd_surrogate(
            SimpleNamespace(layout=layout, model=model, trainer=tr), w, theta, None, None, x, torch.ones(3)
        )
        scratch = [torch.full_like(w, float("nan")) for _ in range(5)]
        got = _surrogate_grad(tr, w, theta, None, None, x, torch.ones(3), torch.zeros_like(w), scratch)
        assert torch.equal(got.view(torch.int32), ref.view(torch.int32)), n_params
        assert (ref.view(torch.int32) < 0).any() == (n_params == 1)  # the case is really exercised


def test_bias_gates_by_value_equal_the_bool_gates():
    from fedgmr.bias_gating import gate_biases_, gate_biases_by_value_, gated_layers

    sim = _sim("released")
    layers = [(g.weight, g.bias) for g in gated_layers(sim.layout)]
    assert layers
    kept = torch.rand(sim.layout.numel, generator=torch.Generator().manual_seed(1)) < 0.002
    w, b = layers[0]
    kept[w.start : w.stop].view(w.shape[0], -1)[0] = False  # a unit without a kept weight
    ref = gate_biases_(kept.float(), kept, layers)
    got = gate_biases_by_value_(kept.float(), layers)
    assert torch.equal(got, ref)
    assert float(got[b.start]) == 0.0 and float(got[b.start + 1 : b.stop].sum()) < b.numel - 1
