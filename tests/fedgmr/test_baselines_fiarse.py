"""FIARSE (reference §7.6, B3): the surrogate gradient against finite differences of its definition,
thresholds, and what a client trains."""

from __future__ import annotations

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


def test_clean_client_keeps_its_top_k_and_trains_only_kept_weights():
    sim = _sim("clean")
    m = sim.method
    sim.net.begin_iteration()
    client = sim.densities.index(0.1)
    start, mask = m.client_start(sim, client)
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
