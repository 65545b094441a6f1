"""fedgmr.index_map: strided gathers and scatters give exactly what the index operations give."""

from __future__ import annotations

import pytest
import torch

from fedgmr import index_map
from fedgmr.config import resolve_config
from fedgmr.index_map import blocks_of, fill_, gather, scatter_


def _maps(method: str, offsets: tuple[int, ...]):
    from fedgmr.simulation import Simulation

    cfg = resolve_config(
        {
            "method": method,
            "seed": 0,
            "dataset": {"name": "synthetic_image", "synthetic_train": 400, "synthetic_test": 20},
            "training": {"local_steps": 1, "batch_size": 20},
            "run": {"progress": False},
        }
    )
    sim = Simulation(cfg)
    return [sim.method.submodel(sim, rho, off)[1] for rho in (0.1, 0.4, 0.8) for off in offsets], sim


def _check(idx: torch.Tensor, n: int) -> None:
    g = torch.Generator().manual_seed(int(idx.numel()))
    src = torch.randn(n, generator=g)
    assert torch.equal(gather(src, idx), src.index_select(0, idx))
    out = torch.full((idx.numel(),), float("nan"))
    assert gather(src, idx, out=out) is out and torch.equal(out, src.index_select(0, idx))
    part = torch.randn(idx.numel(), generator=g)
    base = torch.randn(n, generator=g)
    assert torch.equal(scatter_(base.clone(), idx, part), base.clone().index_copy_(0, idx, part))
    assert torch.equal(fill_(base.clone(), idx, 0.0), base.clone().index_fill_(0, idx, 0.0))
    flags = torch.rand(idx.numel(), generator=g) < 0.5  # bool tensors too (aggregation's slice coverage)
    zeros = torch.zeros(n, dtype=torch.bool)
    assert torch.equal(scatter_(zeros.clone(), idx, flags), zeros.clone().index_copy_(0, idx, flags))


def test_width_slices_are_a_few_strided_blocks_and_copy_exactly():
    maps, sim = _maps("heterofl", (0,))
    for idx in maps:
        blocks = blocks_of(idx)
        assert blocks is not None and len(blocks) <= 2 * len(sim.layout.segments)
        _check(idx, sim.layout.numel)


def test_fedrolex_windows_that_wrap_around_copy_exactly():
    maps, sim = _maps("fedrolex", (0, 5, 37, 63))
    wrapped = 0
    for idx in maps:
        blocks = blocks_of(idx)
        assert blocks is not None  # two runs per row: every other run forms a block
        wrapped += len(blocks) > len(sim.layout.segments)
        _check(idx, sim.layout.numel)
    assert wrapped  # some windows did wrap


@pytest.mark.parametrize(
    "idx",
    [
        torch.sort(torch.randperm(50_000, generator=torch.Generator().manual_seed(0))[:20_000]).values,
        torch.arange(0, 40_000, 3),  # rows of one element at a constant stride
        torch.tensor([5, 4, 3, 2, 1]),
        torch.arange(10_000, 30_000),
        torch.zeros(0, dtype=torch.int64),
    ],
)
def test_irregular_maps_fall_back_or_copy_exactly(idx):
    _check(idx, 50_000)


def test_views_and_cache_identity():
    idx = torch.arange(100, 20_100)
    src = torch.randn(60_000)
    view = src[1000:41_000]  # a view with a storage offset
    assert torch.equal(gather(view, idx), view.index_select(0, idx))
    strided = src[::2]  # not unit stride: index operations
    assert torch.equal(gather(strided, idx), strided.index_select(0, idx))
    assert blocks_of(idx) is blocks_of(idx)
    other = torch.arange(0, 40_000, 2)  # a different map: its own blocks, even if it reuses an id
    index_map._cache[id(other)] = (index_map._cache[id(idx)][0], [])
    assert blocks_of(other) == [(0, 1, 0, 2, 20_000, 1)]  # one block: rows of 1 at stride 2
    assert torch.equal(gather(src, other), src.index_select(0, other))


def test_gather_into_a_wrong_out_is_an_error():
    idx = torch.arange(100, 20_100)
    src = torch.randn(60_000)
    for bad in (torch.empty(idx.numel() + 1), torch.empty(2 * idx.numel())[::2], torch.empty(2, idx.numel() // 2)):
        with pytest.raises(ValueError, match="contiguous vector"):
            gather(src, idx, out=bad)

