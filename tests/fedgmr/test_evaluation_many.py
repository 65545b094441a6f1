"""Several models evaluated together (``Evaluator.many``, issue 9 item 4) give what each gives alone.

Tolerance: the stacked pass (``torch.func.vmap``) sums in another order than one model's forward, so
mean losses agree to float32 ulps (rtol 1e-5); accuracies are counts of argmax hits and agree exactly
unless two logits of a sample are within those ulps, which these seeded models never reach (checked).
A model mix-up, wrong buffers or a dropped batch moves them by far more.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fedgmr.config import resolve_config
from fedgmr.evaluation import Evaluator
from fedgmr.flat import flatten_module
from fedgmr.models import build_model
from fedgmr.simulation import Simulation

BASE = {
    "seed": 3,
    "dataset": {"name": "synthetic_image", "partition": "noniid", "synthetic_train": 400, "synthetic_test": 70},
    "model": {"width": 0.125},
    "clients": {"num": 6, "heterogeneity": "high"},
    "training": {"local_steps": 2, "batch_size": 8, "lr": 0.1},
    "evaluation": {"batch_size": 32},  # several batches, the last one short
    "schedule": {"interval": 3, "max_rounds": 6},
    "run": {"progress": False, "batch_clients": False},
}


def _sim(**over) -> Simulation:
    raw = copy.deepcopy(BASE)
    for k, v in over.items():
        raw[k] = raw.get(k, {}) | v if isinstance(v, dict) else v
    return Simulation(resolve_config(raw))


def _vectors(sim: Simulation, n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [sim.global_w + 0.05 * torch.randn(sim.global_w.shape, generator=g) for _ in range(n)]


def _check(got, want):
    assert len(got) == len(want)
    for (acc_g, loss_g), (acc_w, loss_w) in zip(got, want):
        assert acc_g == acc_w
        assert loss_g == pytest.approx(loss_w, rel=1e-5)


def test_stacked_equals_one_by_one_on_the_test_set():
    sim = _sim()
    ev = sim.evaluator
    ws = _vectors(sim, 5)
    want = [ev(w) for w in ws]
    ev.stacked, ev.max_group = True, 2  # groups of 2, 2 and 1
    got = ev.many(ws)
    assert ev.stacked_failed is None
    _check(got, want)
    assert ev.passes == 10  # five one by one, five stacked


class _Images:
    """Test-set stand-in for a 3-channel model: uint8 images, scaled as the batcher does."""

    def images(self, x):
        return torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)


def test_batchnorm_models_read_their_own_running_statistics():
    model = build_model("resnet18", num_classes=10, width=0.125)
    layout, work, _ = flatten_module(model, model.prunable)
    rng = np.random.default_rng(0)
    data = SimpleNamespace(
        task="image", test_x=rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8), test_y=rng.integers(0, 10, 40)
    )
    ev = Evaluator(model, work, data, _Images(), 16, "ce", layout=layout)
    g = torch.Generator().manual_seed(1)
    ws = []
    for i in range(3):
        w = work.clone() + 0.05 * torch.randn(work.shape, generator=g)
        for s in layout.segments:  # distinct running statistics per model
            if s.is_buffer and "running_var" in s.name:
                w[s.start : s.stop] = 1.0 + 0.5 * i
            elif s.is_buffer and "running_mean" in s.name:
                w[s.start : s.stop] = 0.1 * i
        ws.append(w)
    want = [ev(w) for w in ws]
    assert len({loss for _, loss in want}) == 3
    ev.stacked = True
    _check(ev.many(ws), want)
    assert ev.stacked_failed is None


def test_validation_split_groups_by_client():
    sim = _sim(semantics="clean")  # the clean GMR signal holds out validation data per client
    assert all(len(v) for v in sim.data.val)
    ev = sim.evaluator
    ws = _vectors(sim, 4)
    clients = [0, 1, 0, 2]
    want = [ev(w, "val", c) for w, c in zip(ws, clients)]
    ev.stacked = True
    _check(ev.many(ws, "val", clients), want)


def test_a_model_vmap_cannot_run_falls_back_one_by_one(monkeypatch):
    sim = _sim()
    ev = sim.evaluator
    ws = _vectors(sim, 3)
    want = [ev(w) for w in ws]

    def refuse(*a, **k):
        raise NotImplementedError("no batching rule")

    monkeypatch.setattr("fedgmr.evaluation.evaluate_stacked", refuse)
    ev.stacked = True
    _check(ev.many(ws), want)
    assert "no batching rule" in ev.stacked_failed


@pytest.mark.parametrize("semantics", ["released", "clean"])
def test_run_with_stacked_evaluation_matches_one_by_one(semantics):
    """The loop's ticks and client scores through ``many`` (test set as released, each client's validation
    data when clean): the same metrics as evaluating one by one."""
    seq, st = _sim(method="fedgmr", semantics=semantics), _sim(method="fedgmr", semantics=semantics)
    st.evaluator.stacked = True
    while seq.step():
        assert st.step()
    assert not st.step()
    assert st.evaluator.stacked_failed is None
    assert sum(s >= 0 for s in st.client_scores) >= 2, "client scores were measured"
    assert [m["acc"] for m in st.metrics] == [m["acc"] for m in seq.metrics]
    assert st.client_scores == seq.client_scores
    for a, b in zip(st.metrics, seq.metrics):
        assert a["loss_server"] == pytest.approx(b["loss_server"], rel=1e-5)
    torch.testing.assert_close(st.global_w, seq.global_w, rtol=0, atol=0)


def test_stacked_needs_a_layout():
    sim = _sim()
    with pytest.raises(ValueError, match="layout"):
        Evaluator(sim.model, sim.work, sim.data, sim.batcher, 32, "ce", stacked=True)
