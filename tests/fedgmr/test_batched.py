"""Batched local training (fedgmr.batched) against the sequential ``Trainer.train``, one iteration of several
clients, for every model family at tiny width.

Tolerance: batched kernels (grouped convolutions and batched matmuls under vmap) and a different number of
intra-op threads (1-thread workers against the caller's threads) sum the same products in another order,
so each forward/backward differs by float32 rounding (~1e-7 relative per reduction), and K steps of SGD carry
that along. Uploads and momentum buffers must agree to ``rtol=1e-4, atol=1e-5`` (largest difference seen
here: about 2e-6 after 3 steps at lr 0.05); a wrong mask, momentum, weight decay, dropout stream, BN
statistic or a client mixed up with another moves them by 1e-3 or more. Masked coordinates are compared
exactly where ``remask`` promises exact zeros.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from fedgmr.batched import GroupTrainer, Job, SeededDropout, train_group
from fedgmr.flat import flatten_module
from fedgmr.models import build_model
from fedgmr.training import Trainer

RTOL, ATOL = 1e-4, 1e-5
CLIENTS = 4
STEPS = 3
LR = 0.05


def _image_batches(shape, classes, batch=6):
    def make(gen, batch=batch):
        return torch.randn(batch, *shape, generator=gen), torch.randint(0, classes, (batch,), generator=gen)

    return make


def _lm_batches(vocab, length):
    def make(gen, batch=4, length=length):
        tok = torch.randint(0, vocab, (batch, length + 1), generator=gen)
        return tok[:, :-1], tok[:, 1:]

    return make


# family -> (model builder, batch maker, loss)
FAMILIES = {
    "leaf_cnn": (
        lambda: build_model("leaf_cnn", num_classes=10, width=0.125),
        _image_batches((1, 28, 28), 10),
        "bce_onehot",
    ),
    "vgg11": (
        lambda: build_model("vgg11", num_classes=10, width=0.0625),
        _image_batches((3, 32, 32), 10),
        "bce_onehot",
    ),
    "resnet18": (
        lambda: build_model("resnet18", num_classes=10, width=0.0625),
        _image_batches((3, 64, 64), 10, batch=8),
        "bce_onehot",
    ),
    "transformer_lm": (
        lambda: build_model("transformer_lm", vocab_size=50, width=0.25, seq_len=16),
        _lm_batches(50, 12),
        "ce",
    ),
}


def _trainer(family: str, momentum: float = 0.9, wd: float = 1e-3) -> Trainer:
    torch.manual_seed(0)
    model = FAMILIES[family][0]()
    layout, work, _ = flatten_module(model, model.prunable)
    return Trainer(model, layout, work, FAMILIES[family][2], momentum, wd)


def _jobs(trainer: Trainer, family: str, masked: bool, remask: bool, momentum: bool = True, seed: int = 1):
    """CLIENTS jobs: different masks (one dense client among masked ones), batches, momentum and seeds."""
    g = torch.Generator().manual_seed(seed)
    make = FAMILIES[family][1]
    layout = trainer.layout
    start = trainer.work.clone()
    jobs = []
    for c in range(CLIENTS):
        mask = None
        if masked and c != 0:  # client 0 trains the dense model, as a density-1 FedGMR client does
            density = (0.5, 0.2, 0.1)[(c - 1) % 3]
            mask = ~layout.prunable | (torch.rand(layout.numel, generator=g) < density)
        mom = None
        if momentum:
            # Momentum left from earlier rounds, also on coordinates masked now (what B6 leaks).
            mom = torch.randn(layout.numel, generator=g) * 0.01 * layout.trainable
        batches = [make(g) for _ in range(STEPS)]
        jobs.append(Job(start, mask, mom, batches, LR, remask, seed=1000 + c))
    return jobs


def _clone(jobs):
    return [
        Job(
            j.start,
            j.mask,
            None if j.momentum_buf is None else j.momentum_buf.clone(),
            list(j.batches),
            j.lr,
            j.remask,
            j.seed,
            None,
            dict(j.model_attrs),
        )
        for j in jobs
    ]


def _sequential(trainer, jobs):
    return [
        trainer.train(j.start, j.mask, j.momentum_buf, j.batches, j.lr, j.remask, j.seed).clone()
        for j in jobs
    ]


def _check(trainer, ref_jobs, ref_out, jobs, out, remask):
    for c, (rj, ro, j, o) in enumerate(zip(ref_jobs, ref_out, jobs, out)):
        torch.testing.assert_close(o, ro, rtol=RTOL, atol=ATOL, msg=lambda m: f"client {c} upload: {m}")
        if rj.momentum_buf is not None:
            torch.testing.assert_close(
                j.momentum_buf,
                rj.momentum_buf,
                rtol=RTOL,
                atol=ATOL,
                msg=lambda m: f"client {c} momentum: {m}",
            )
        if j.mask is not None:
            off = ~j.mask & trainer.layout.trainable
            if remask:  # exact zeros, weights and momentum
                assert torch.count_nonzero(o[off]) == 0
                if j.momentum_buf is not None:
                    assert torch.count_nonzero(j.momentum_buf[off]) == 0
            elif j.momentum_buf is not None:  # B6: momentum moved masked coordinates, as sequentially
                assert torch.count_nonzero(o[off]) > 0
    # Every client really trained (nothing returned its start).
    for j, o in zip(jobs, out):
        assert not torch.equal(o, j.start)


@pytest.mark.parametrize("backend", ["threads", "vmap"])
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize(("masked", "remask"), [(True, True), (True, False), (False, True), (False, False)])
def test_batched_equals_sequential(family, backend, masked, remask):
    trainer = _trainer(family)
    jobs = _jobs(trainer, family, masked, remask)
    ref_jobs = _clone(jobs)
    ref = _sequential(trainer, ref_jobs)
    gt = GroupTrainer(trainer, backend, workers=2)
    out = gt.train(jobs)
    assert gt.backend == backend
    _check(trainer, ref_jobs, ref, jobs, out, remask)
    gt.close()


@pytest.mark.parametrize("backend", ["threads", "vmap"])
@pytest.mark.parametrize("family", ["leaf_cnn", "resnet18"])
def test_plain_sgd_without_momentum(family, backend):
    trainer = _trainer(family, momentum=0.0, wd=0.0)
    jobs = _jobs(trainer, family, masked=True, remask=False, momentum=False)
    ref_jobs = _clone(jobs)
    ref = _sequential(trainer, ref_jobs)
    _check(trainer, ref_jobs, ref, jobs, GroupTrainer(trainer, backend).train(jobs), remask=False)


@pytest.mark.parametrize("backend", ["threads", "vmap"])
def test_deterministic_bytes(backend):
    """Same jobs, same seeds: the same bytes, twice (dropout on: the transformer trains in train mode)."""
    trainer = _trainer("transformer_lm")
    outs, moms = [], []
    for _ in range(2):
        jobs = _jobs(trainer, "transformer_lm", masked=True, remask=False)
        gt = GroupTrainer(trainer, backend, workers=2)
        outs.append([o.clone() for o in gt.train(jobs)])
        moms.append([j.momentum_buf.clone() for j in jobs])
        gt.close()
    for a, b in zip(outs[0] + moms[0], outs[1] + moms[1]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", ["threads", "vmap"])
def test_dropout_depends_on_own_seed_only(backend):
    """A client's dropout stream is its own: alone or among others it trains the same; another seed differs."""
    trainer = _trainer("transformer_lm")
    jobs = _jobs(trainer, "transformer_lm", masked=False, remask=True)
    together = GroupTrainer(trainer, backend, workers=2).train(_clone(jobs))
    # Client 2 with two other clients (another group composition and order).
    alone = GroupTrainer(trainer, backend, workers=2).train(_clone([jobs[2], jobs[0], jobs[3]]))
    torch.testing.assert_close(alone[0], together[2], rtol=RTOL, atol=ATOL)
    other = _clone([jobs[2], jobs[0]])
    other[0].seed = 999
    reseeded = GroupTrainer(trainer, backend, workers=2).train(other)
    assert (reseeded[0] - together[2]).abs().max() > 1e-4


def test_seeded_dropout_draws_atens_noise():
    """SeededDropout with a seeded generator gives exactly nn.Dropout's output after torch.manual_seed."""
    x = torch.randn(7, 33)
    d = SeededDropout(0.3)
    d.generator = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    assert torch.equal(d(x), nn.Dropout(0.3)(x))
    kept = (d(torch.ones(20_000)) != 0).float().mean().item()
    assert abs(kept - 0.7) < 0.02


def test_global_rng_left_alone():
    trainer = _trainer("transformer_lm")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train_group(trainer, _jobs(trainer, "transformer_lm", masked=False, remask=True), backend="threads")
    assert torch.equal(torch.get_rng_state(), before)


def test_vmap_groups_split_by_lr_and_shape():
    """Jobs that cannot share one update (another lr) or one stacked batch (another length) still train right."""
    trainer = _trainer("transformer_lm")
    jobs = _jobs(trainer, "transformer_lm", masked=True, remask=True)
    jobs[1].lr = 0.02
    g = torch.Generator().manual_seed(7)
    jobs[3].batches = [_lm_batches(50, 9)(g) for _ in range(STEPS)]  # shorter sequences (per-batch padding)
    ref_jobs = _clone(jobs)
    ref = _sequential(trainer, ref_jobs)
    _check(trainer, ref_jobs, ref, jobs, GroupTrainer(trainer, "vmap").train(jobs), remask=True)


def test_vmap_max_group_splits():
    trainer = _trainer("leaf_cnn")
    jobs = _jobs(trainer, "leaf_cnn", masked=True, remask=True)
    ref_jobs = _clone(jobs)
    ref = _sequential(trainer, ref_jobs)
    _check(trainer, ref_jobs, ref, jobs, GroupTrainer(trainer, "vmap", max_group=3).train(jobs), remask=True)


def test_model_attrs_set_per_job():
    """The HeteroFL scaler (a model attribute) is applied per job."""
    trainer = _trainer("resnet18")
    jobs = _jobs(trainer, "resnet18", masked=False, remask=True)
    jobs[1].model_attrs = {"scaler": 0.5}
    jobs[2].model_attrs = {"scaler": 0.5}
    for backend in ("threads", "vmap"):
        ref_jobs = _clone(jobs)
        ref = []
        for j in ref_jobs:
            trainer.model.scaler = j.model_attrs.get("scaler")
            ref.append(
                trainer.train(j.start, j.mask, j.momentum_buf, j.batches, j.lr, j.remask, j.seed).clone()
            )
        trainer.model.scaler = None
        run_jobs = _clone(jobs)
        for j in run_jobs:
            j.model_attrs.setdefault("scaler", None)
        _check(trainer, ref_jobs, ref, run_jobs, GroupTrainer(trainer, backend).train(run_jobs), remask=True)


def test_unsupported_randomness_falls_back(caplog):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.drop = nn.Dropout1d(0.5)

        def forward(self, x):
            return self.fc(self.drop(x))

    model = Net()
    layout, work, _ = flatten_module(model, ["fc.weight"])
    trainer = Trainer(model, layout, work, "bce_onehot", 0.0, 0.0)
    with caplog.at_level(logging.WARNING, logger="fedgmr.batched"):
        gt = GroupTrainer(trainer, "vmap")
    assert gt.backend == "sequential"
    assert "Dropout1d" in caplog.text or "drop" in caplog.text
