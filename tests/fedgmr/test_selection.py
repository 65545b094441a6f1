"""kth_smallest returns exactly torch.kthvalue's value, whatever the data (fedgmr.selection)."""

from __future__ import annotations

import pytest
import torch

from fedgmr.selection import kth_smallest


def _ks(n: int) -> list[int]:
    return sorted({1, 2, n // 1000 + 1, n // 50, n // 20, n // 10, n // 2, n - n // 10, n - n // 50, n - 1, n})


@pytest.mark.parametrize(
    "make",
    [
        lambda g, n: torch.randn(n, generator=g),
        lambda g, n: torch.randn(n, generator=g).abs(),
        # heavy ties: a few distinct values, zeros of both signs
        lambda g, n: torch.randint(-3, 4, (n,), generator=g).float() * torch.tensor([1.0, -1.0]).repeat(n // 2),
        # sorted and reverse-sorted (the strided sample sees only one end of each run)
        lambda g, n: torch.sort(torch.rand(n, generator=g)).values,
        lambda g, n: torch.sort(torch.rand(n, generator=g), descending=True).values,
        # a mass of exact zeros (masked weights) and a tail, at several densities
        lambda g, n: torch.where(torch.rand(n, generator=g) < 0.7, 0.0, torch.randn(n, generator=g)),
        lambda g, n: torch.where(torch.rand(n, generator=g) < 0.95, 0.0, torch.randn(n, generator=g)).abs(),
        lambda g, n: torch.where(torch.rand(n, generator=g) < 0.02, 0.0, torch.randn(n, generator=g)).abs(),
        lambda g, n: torch.randn(n, generator=g, dtype=torch.float64),
        # dtypes read through NumPy or widened for it, and a strided view
        lambda g, n: torch.randn(n, generator=g).to(torch.float16),
        lambda g, n: torch.randn(n, generator=g).to(torch.bfloat16),
        lambda g, n: torch.randn(2 * n, generator=g)[::2],
        # infinities of one sign: the sum is inf, not NaN, so the counting path runs
        lambda g, n: torch.where(torch.rand(n, generator=g) < 0.1, float("inf"), torch.randn(n, generator=g)),
    ],
)
def test_equals_kthvalue(make):
    g = torch.Generator().manual_seed(0)
    n = 200_000
    v = make(g, n)
    for k in _ks(n):
        got = kth_smallest(v, k)
        assert got.dtype == v.dtype and got.item() == torch.kthvalue(v, k).values.item(), k


def test_sorted_runs_of_equal_values():
    # Long runs of equal values with a regular pattern of large ones.
    n = 100_000
    v = torch.zeros(n)
    step = 24
    v[::step] = 1e6
    for k in _ks(n):
        assert kth_smallest(v, k).item() == torch.kthvalue(v, k).values.item()


def test_nan_and_inf_fall_back_to_kthvalue():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(100_000, generator=g)
    v[::7] = float("inf")
    v[3] = -float("inf")
    for k in (1, 2, 50_000, 99_999):
        assert kth_smallest(v, k).item() == torch.kthvalue(v, k).values.item()
    v[11] = float("nan")
    for k in (1, 50_000):
        a, b = kth_smallest(v, k).item(), torch.kthvalue(v, k).values.item()
        assert a == b or (a != a and b != b)


def test_small_integer_and_bad_inputs():
    v = torch.tensor([3, 1, 2])
    assert kth_smallest(v, 2).item() == 2
    with pytest.raises(ValueError):
        kth_smallest(v, 0)
    with pytest.raises(ValueError):
        kth_smallest(v, 4)
    with pytest.raises(ValueError):
        kth_smallest(v.view(1, 3), 1)


def test_k_at_the_edges_of_a_tie_block():
    g = torch.Generator().manual_seed(2)
    n = 300_000
    v = torch.where(torch.rand(n, generator=g) < 0.8, 0.0, torch.rand(n, generator=g) + 0.5)
    v[::1000] = 0.75  # a second tie block inside the tail
    zeros, below_75 = int((v == 0).sum()), int((v < 0.75).sum())
    ks = [zeros - 1, zeros, zeros + 1, zeros + 2, below_75, below_75 + 1, below_75 + 300, below_75 + 301]
    ks += torch.randint(1, n + 1, (20,), generator=g).tolist()
    for k in ks:
        assert kth_smallest(v, k).item() == torch.kthvalue(v, k).values.item(), k


def test_structured_matrix_whose_columns_a_stride_would_alias():
    # A 2048 x 3136 layer with whole input columns silenced, as a channel-masked dense layer has.
    g = torch.Generator().manual_seed(3)
    w = torch.randn(512, 3136, generator=g)
    w[:, ::392] = 0.0
    v = w.reshape(-1).abs()
    for k in (int(0.98 * v.numel()) + 1, v.numel() // 2, 100):
        assert kth_smallest(v, k).item() == torch.kthvalue(v, k).values.item()
