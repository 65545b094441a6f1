"""Masked local SGD on the flat vector: hand-checkable updates and the masking rules of reference §4.4."""

import torch
from torch import nn

from fedgmr.flat import flatten_module
from fedgmr.training import Trainer, lr_at


class Lin(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1, bias=False)

    def forward(self, x):
        return self.fc(x).squeeze(-1)


def _mse_trainer(momentum=0.0, wd=0.0):
    m = Lin()
    layout, work, _ = flatten_module(m, ["fc.weight"])
    return Trainer(m, layout, work, lambda out, y: ((out - y) ** 2).mean(), momentum, wd)


def test_plain_sgd_step_by_hand():
    t = _mse_trainer()
    x = torch.tensor([[1.0, 2.0]])
    y = torch.tensor([1.0])
    # w = (1, 1): out = 3, loss = (3-1)^2, dL/dw = 2*(3-1)*x = (4, 8); lr 0.1 -> (0.6, 0.2)
    out = t.train(torch.tensor([1.0, 1.0]), None, None, [(x, y)], lr=0.1, remask=True, seed=0)
    assert torch.allclose(out, torch.tensor([0.6, 0.2]))
    # mask the second weight: forward uses (1, 0): out = 1, loss 0 -> no change, masked stays 0
    out = t.train(
        torch.tensor([1.0, 0.0]), torch.tensor([True, False]), None, [(x, y)], lr=0.1, remask=True, seed=0
    )
    assert torch.equal(out, torch.tensor([1.0, 0.0]))


def test_momentum_leak_without_remask_and_none_with_it():
    t = _mse_trainer(momentum=0.9)
    x = torch.tensor([[1.0, 2.0]])
    y = torch.tensor([0.0])
    mask = torch.tensor([True, False])
    buf = torch.tensor([0.0, 1.0])  # momentum left over from a dense round (B6)
    out = t.train(torch.tensor([1.0, 0.0]), mask, buf.clone(), [(x, y)], lr=0.1, remask=False, seed=0)
    # masked coordinate: grad 0, buf = 0.9*1 = 0.9, w = 0 - 0.1*0.9 = -0.09 (the leak)
    assert abs(out[1].item() + 0.09) < 1e-7
    # active coordinate: out=1, dL/dw0 = 2*1*1 = 2; buf0 = 2; w0 = 1 - 0.2 = 0.8
    assert abs(out[0].item() - 0.8) < 1e-7
    b2 = buf.clone()
    out = t.train(torch.tensor([1.0, 0.0]), mask, b2, [(x, y)], lr=0.1, remask=True, seed=0)
    assert out[1].item() == 0.0 and b2[1].item() == 0.0


def test_lr_schedules():
    assert lr_at(0.1, {"kind": "constant"}, 10**6) == 0.1
    assert lr_at(1.0, {"kind": "multistep", "milestones": [2, 4], "gamma": 0.5}, 4) == 0.25
    assert abs(lr_at(1.0, {"kind": "step", "step": 2000, "gamma": 0.5**0.2}, 10_000) - 0.5) < 1e-12


class _Net(nn.Module):
    """Weights, biases, BatchNorm statistics (buffers in the flat vector) and dropout."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


def _net_trainer(momentum, wd):
    torch.manual_seed(1)
    m = _Net()
    layout, work, _ = flatten_module(m, ["fc1.weight", "fc2.weight"])
    return Trainer(m, layout, work, "bce_onehot", momentum, wd)


def _case(t, mask_kind):
    g = torch.Generator().manual_seed(2)
    start = torch.randn(t.work.numel(), generator=g)
    start[t.layout.trainable.logical_not()] = 1.0  # BN statistics: any positive values
    mask = None
    if mask_kind:
        mask = (torch.rand(start.numel(), generator=g) < 0.6) | ~t.layout.prunable
    batches = [(torch.randn(5, 4, generator=g), torch.randint(0, 3, (5,), generator=g)) for _ in range(3)]
    return start, mask, batches


def test_training_in_the_output_buffer_is_training_in_work_and_copying_out():
    cases = [(0, 0, False, False), (0.9, 5e-4, True, False), (0.9, 5e-4, True, True)]
    for momentum, wd, mask_kind, remask in cases:
        t = _net_trainer(momentum, wd)
        start, mask, batches = _case(t, mask_kind)
        gates = [("fc1.bias", torch.tensor([True, False, True, True, False, True]))]
        mom_a = torch.full_like(start, 0.01) if momentum else None
        mom_b = None if mom_a is None else mom_a.clone()
        kwargs = dict(lr=0.05, remask=remask, seed=7, gates=gates)
        a = t.train(start, mask, mom_a, iter(batches), **kwargs).clone()  # in work, copied out by clone
        out = torch.full_like(start, float("nan"))
        b = t.train(start, mask, mom_b, iter(batches), out=out, **kwargs)
        assert b is out
        assert torch.equal(a, b), (momentum, mask_kind, remask)  # BN statistics included
        if mom_a is not None:
            assert torch.equal(mom_a, mom_b)
        # The module is bound back to the shared working vector.
        lo, hi = t.work.data_ptr(), t.work.data_ptr() + 4 * t.work.numel()
        assert all(lo <= p.data_ptr() < hi for p in t.model.parameters())
        assert lo <= t.model.bn.running_mean.data_ptr() < hi


def test_a_training_that_fails_leaves_the_module_on_its_working_vector():
    t = _net_trainer(0.0, 0.0)
    start, _, batches = _case(t, False)

    def broken():
        yield batches[0]
        raise RuntimeError("batch source failed")

    out = torch.zeros_like(start)
    try:
        t.train(start, None, None, broken(), lr=0.1, remask=False, seed=0, out=out)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the error must reach the caller")
    t.work.fill_(0.5)
    assert all(bool((p == 0.5).all()) for p in t.model.parameters())
