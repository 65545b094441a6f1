"""Batched client training inside the loop: released bias gates survive batching, and one iteration of
every method family gives the same uploads batched as one client at a time.

Tolerance: as ``tests/fedgmr/test_batched.py`` (rtol 1e-4, atol 1e-5): batched kernels and 1-thread
workers sum in another order than the sequential path, a few float32 ulps per step; a wrong gate, mask
or client mix-up moves uploads by far more.
"""

from __future__ import annotations

import copy

import pytest
import torch

from fedgmr.batched import GroupTrainer, Job
from fedgmr.bias_gating import gated_layers, unit_gates
from fedgmr.config import resolve_config
from fedgmr.simulation import Simulation
from tests.fedgmr.test_batched import CLIENTS, _jobs, _trainer

RTOL, ATOL = 1e-4, 1e-5


def _gated(trainer, jobs):
    layers = gated_layers(trainer.layout)
    out = []
    for j in jobs:
        gates = None if j.mask is None else [(g.bias.name, u) for g, u in zip(layers, unit_gates(j.mask, layers))]
        out.append(Job(j.start, j.mask, j.momentum_buf, j.batches, j.lr, j.remask, j.seed, gates=gates))
    return out


@pytest.mark.parametrize("backend", ["threads", "vmap"])
def test_gated_jobs_batched_equal_sequential(backend):
    trainer = _trainer("leaf_cnn")
    jobs = _jobs(trainer, "leaf_cnn", masked=True, remask=False)
    # Silence a few units of conv1 in every masked client so that gating matters.
    w = trainer.layout.by_name["conv1.weight"]
    per_unit = w.numel // w.shape[0]
    for j in jobs:
        if j.mask is not None:
            j.mask = j.mask.clone()
            j.mask[w.start : w.start + 3 * per_unit] = False
    jobs = _gated(trainer, jobs)
    assert any(g is not None and not bool(g[0][1].all()) for g in (j.gates for j in jobs))
    ref = [copy.copy(j) for j in jobs]
    for r in ref:
        r.momentum_buf = None if r.momentum_buf is None else r.momentum_buf.clone()
        r.batches = list(r.batches)
    want = [trainer.train(**r.trainer_kwargs()).clone() for r in ref]
    got = GroupTrainer(trainer, backend=backend, workers=2).train(jobs)
    b = trainer.layout.by_name["conv1.bias"]
    for c, (o, r) in enumerate(zip(got, want)):
        torch.testing.assert_close(o, r, rtol=RTOL, atol=ATOL, msg=lambda m: f"client {c}: {m}")
        if jobs[c].mask is not None:
            # A silent unit's bias moved only by weight decay and momentum, identically in both paths.
            torch.testing.assert_close(o[b.start : b.start + 3], r[b.start : b.start + 3], rtol=0, atol=1e-7)
    assert len(got) == CLIENTS


BASE = {
    "seed": 2,
    "dataset": {"name": "synthetic_image", "partition": "noniid", "synthetic_train": 400, "synthetic_test": 60},
    "model": {"width": 0.125},
    "clients": {"num": 10, "heterogeneity": "high"},
    "training": {"local_steps": 2, "batch_size": 8, "lr": 0.1},
    "schedule": {"interval": 3, "max_rounds": 12},
    "restoration": {"patience": 1},
    "run": {"progress": False},
}


def _sim(method, semantics, batch, backend="auto"):
    raw = copy.deepcopy(BASE) | {"method": method, "semantics": semantics}
    raw["run"] = dict(raw["run"], batch_clients=batch, batch_backend=backend)
    return Simulation(resolve_config(raw))


def test_cpu_default_is_the_reference_path():
    """On the CPU ``batch_clients: true`` trains one client after another (``default_backend``): the
    goldens' path, bit for bit; the batched backends are chosen explicitly."""
    assert _sim("fedgmr", "released", True).group is None
    assert _sim("fedgmr", "released", True, "threads").group.backend == "threads"
    vm = _sim("fedgmr", "released", True, "vmap")
    assert vm.group.backend == "vmap" and vm.evaluator.stacked


@pytest.mark.parametrize("backend", ["threads", "vmap"])
@pytest.mark.parametrize("semantics", ["released", "clean"])
@pytest.mark.parametrize("method", ["fedgmr", "fedavg", "wo_buff", "fiarse", "heterofl", "fjord"])
def test_one_iteration_batched_equals_sequential(method, semantics, backend):
    one_thread = torch.get_num_threads()
    torch.set_num_threads(1)  # the sequential reference on one thread, as each worker runs
    try:
        seq, bat = _sim(method, semantics, False), _sim(method, semantics, True, backend)
        for _ in range(6):  # past round 0 (dense as released) into masked rounds
            seq.step()
            bat.step()
        for i in range(seq.n):
            a, b = seq.uploads[i], bat.uploads[i]
            assert (a is None) == (b is None)
            if a is not None:
                torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL, msg=lambda m: f"client {i}: {m}")
        torch.testing.assert_close(bat.global_w, seq.global_w, rtol=RTOL, atol=ATOL)
    finally:
        torch.set_num_threads(one_thread)
