"""The engine's fast mask conversions (``fedgmr.flat``) give exactly what the plain torch operations give."""

from __future__ import annotations

import torch

from fedgmr.flat import any_per_row, as_float, nonzero


def test_as_float_equals_the_conversion_also_on_views():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(1000, generator=g) < 0.3
    for dtype in (torch.float32, torch.float64, torch.float16):
        assert torch.equal(as_float(m, dtype), m.to(dtype))
    view = m.view(40, 25)[:, 3:17]  # not contiguous
    assert torch.equal(as_float(view), view.to(torch.float32))


def test_nonzero_equals_the_comparison_on_every_special_value():
    v = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-45, -1e-45, 2.5, -3.0])
    assert nonzero(v).tolist() == (v != 0).tolist() == [False, False, True, True, True, True, True, True, True]
    r = torch.randn(10_000)
    r[::3] = 0.0
    assert torch.equal(nonzero(r), r != 0)


def test_any_per_row_equals_any():
    g = torch.Generator().manual_seed(1)
    m = torch.rand(64, 37, generator=g) < 0.02  # several rows without a True
    m[5] = False
    m[6] = True
    assert torch.equal(any_per_row(m), m.any(1))
    assert bool((~m.any(1)).any())  # the test has empty rows
