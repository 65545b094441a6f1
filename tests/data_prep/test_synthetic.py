"""Synthetic data: deterministic, well-formed and learnable by a tiny model in a few dozen steps."""

import numpy as np
import torch

from data_prep import synthetic


def test_image_shapes_and_determinism():
    a = synthetic.make_image(n_train=40, n_test=10, num_classes=4, shape=(3, 8, 8), seed=3)
    b = synthetic.make_image(n_train=40, n_test=10, num_classes=4, shape=(3, 8, 8), seed=3)
    c = synthetic.make_image(n_train=40, n_test=10, num_classes=4, shape=(3, 8, 8), seed=4)
    assert a.train_x.shape == (40, 3, 8, 8) and a.train_x.dtype == np.uint8 and a.test_y.shape == (10,)
    assert np.array_equal(a.train_x, b.train_x) and not np.array_equal(a.train_x, c.train_x)
    assert np.bincount(a.train_y).tolist() == [10, 10, 10, 10]
    assert a.train_group.min() == 0 and np.all(np.diff(a.train_group) >= 0)


def test_image_learnable():
    d = synthetic.make_image(n_train=400, n_test=200, num_classes=10, seed=0)
    torch.manual_seed(0)
    x = torch.tensor(d.train_x, dtype=torch.float32).flatten(1) / 255
    xt = torch.tensor(d.test_x, dtype=torch.float32).flatten(1) / 255
    y, yt = torch.tensor(d.train_y), torch.tensor(d.test_y)
    model = torch.nn.Linear(784, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    acc0 = (model(xt).argmax(1) == yt).float().mean().item()
    for step in range(40):
        idx = torch.arange(step * 20, step * 20 + 20) % 400
        loss = torch.nn.functional.cross_entropy(model(x[idx] - 0.5), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = (model(xt - 0.5).argmax(1) == yt).float().mean().item()
    assert acc > 0.8 > acc0 + 0.3


def test_text_shapes_and_learnable():
    d = synthetic.make_text(n_train=300, n_test_chunks=40, vocab_size=30, seq_len=12, n_users=6, seed=0)
    assert d.train_x.shape == (300, 12) and d.test_x.shape == (40, 21) and d.train_x.dtype == np.int32
    assert d.train_group.max() == 5 and d.test_x.min() >= 2 and d.train_x.max() < 30
    # Right padding: once a row hits 0 it stays 0.
    nz = d.train_x > 0
    assert np.all(nz[:, :-1] >= nz[:, 1:])
    torch.manual_seed(0)
    tok = torch.tensor(d.train_x, dtype=torch.long)
    inp, tgt = tok[:, :-1].reshape(-1), tok[:, 1:].reshape(-1)
    keep = (inp > 0) & (tgt > 0)
    inp, tgt = inp[keep], tgt[keep]
    model = torch.nn.Sequential(torch.nn.Embedding(30, 16), torch.nn.Linear(16, 30))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    test = torch.tensor(d.test_x, dtype=torch.long)

    def top1():
        with torch.no_grad():
            return (model(test[:, :-1]).argmax(-1) == test[:, 1:]).float().mean().item()

    acc0 = top1()
    for step in range(60):
        idx = torch.arange(step * 64, step * 64 + 64) % len(inp)
        loss = torch.nn.functional.cross_entropy(model(inp[idx]), tgt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert top1() > max(0.3, acc0 + 0.2)
