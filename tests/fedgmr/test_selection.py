"""kth_smallest returns exactly torch.kthvalue's value, whatever the data (fedgmr.selection)."""

from __future__ import annotations

import pytest
import torch

from fedgmr.selection import kth_smallest


def _ks(n: int) -> list[int]:
    return sorted({1, 2, n // 1000 + 1, n // 10, n // 2, n - n // 10, n - 1, n})


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
        # a mass of exact zeros (masked weights) and a tail
        lambda g, n: torch.where(torch.rand(n, generator=g) < 0.7, 0.0, torch.randn(n, generator=g)),
        lambda g, n: torch.randn(n, generator=g, dtype=torch.float64),
    ],
)
def test_equals_kthvalue(make):
    g = torch.Generator().manual_seed(0)
    n = 200_000
    v = make(g, n)
    for k in _ks(n):
        assert kth_smallest(v, k).item() == torch.kthvalue(v, k).values.item(), k


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
