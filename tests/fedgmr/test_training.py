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
