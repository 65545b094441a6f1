"""Hand-computed checks of the nested global masks (reference §4.3)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from fedgmr.flat import FlatLayout, Segment, flatten_module
from fedgmr.masks import (
    NestedMasks,
    build_priority,
    candidate_count,
    density_of,
    mask_for,
    num_floor,
)


def small_layout() -> FlatLayout:
    """a.weight (10, layer 0) | a.bias (2, never pruned) | b.weight (5, layer 1): 17 coords, N = 15."""
    return FlatLayout(
        [
            Segment("a.weight", 0, 10, (10,), False, 0),
            Segment("a.bias", 10, 2, (2,), False, -1),
            Segment("b.weight", 12, 5, (5,), False, 1),
        ]
    )


# Layer a: position -> score; the floor keeps sorted position int(0.98 * 10) = 9, the 10 at position 9.
A = [1.0, 9.0, 3.0, 5.0, 2.0, 8.0, 4.0, 7.0, 6.0, 10.0]
# Layer b (positions 12..16): the floor keeps sorted position int(0.98 * 5) = 4, the 20 at position 15.
B = [0.5, 3.5, 1.5, 20.0, 2.5]
# The bias scores are irrelevant: never pruned. Make them the smallest to show they are still kept.
SCORE = torch.tensor(A + [0.0, 0.0] + B)


def test_priority_plain_global_ranking():
    p = build_priority(SCORE, small_layout())
    # Candidates by value, descending: 9(1) 8(5) 7(7) 6(8) 5(3) 4(6) 3.5(13) 3(2) 2.5(16) 2(4) 1.5(14)
    # 1(0) 0.5(12) -> ranks 0..12. Floor (9, 15) and bias (10, 11) are -1.
    expected = [11, 0, 7, 4, 9, 1, 5, 2, 3, -1, -1, -1, 12, 6, 10, -1, 8]
    assert p.dtype == torch.int64
    assert p.tolist() == expected
    assert num_floor(small_layout(), p) == 2


def test_coefficient_prefers_layer_with_small_coefficient_and_ties_are_stable():
    # c_b = 0.25 multiplies layer b's values by 4: 3.5->14, 2.5->10, 1.5->6, 0.5->2.
    # Ranking: 14(13) 10(16) 9(1) 8(5) 7(7) then the tie 6(8) vs 6(14): the lower flat position first,
    # 5(3) 4(6) 3(2), the tie 2(4) vs 2(12): position 4 first, then 1(0).
    p = build_priority(SCORE, small_layout(), coefficients=[1.0, 0.25])
    expected = [12, 2, 9, 7, 10, 3, 8, 4, 5, -1, -1, -1, 11, 0, 6, -1, 1]
    assert p.tolist() == expected
    layout = small_layout()
    # Density 0.2 -> 3 active = floor 2 + 1 candidate: layer b's best candidate, not layer a's.
    m = mask_for(p, candidate_count(0.2, layout, p))
    assert m[13] and not m[1]


def test_normalize_by_layer_mean():
    # Candidate means: layer a (1..9) = 5, layer b (3.5, 2.5, 1.5, 0.5) = 2.
    # a: 1.8(1) 1.6(5) 1.4(7) 1.2(8) 1.0(3) 0.8(6) 0.6(2) 0.4(4) 0.2(0); b: 1.75(13) 1.25(16) 0.75(14) 0.25(12)
    # -> 1.8 1.75 1.6 1.4 1.25 1.2 1.0 0.8 0.75 0.6 0.4 0.25 0.2
    p = build_priority(SCORE, small_layout(), coefficients=[1.0, 1.0], normalize_by_layer_mean=True)
    expected = [12, 0, 9, 6, 10, 2, 7, 3, 5, -1, -1, -1, 11, 1, 8, -1, 4]
    assert p.tolist() == expected


def test_densities_are_exact():
    layout = small_layout()
    p = build_priority(SCORE, layout)
    # N = 15, n_floor = 2. active(rho) = max(2, floor(15 rho)).
    cases = {0.0: 0, 0.1: 0, 0.2: 1, 0.5: 5, 0.7: 8, 1.0: 13}  # 15*0.1=1.5->1<2; 7.5->7; 10.5->10
    for rho, count in cases.items():
        assert candidate_count(rho, layout, p) == count, rho
    m = mask_for(p, 5)
    assert density_of(m, layout) == pytest.approx(7 / 15)
    # Density 0.5 = floor {9, 15} + ranks 0..4 = positions {1, 5, 7, 8, 3}, + the bias.
    assert torch.nonzero(m).squeeze(1).tolist() == [1, 3, 5, 7, 8, 9, 10, 11, 15]


def test_count_guards_float_error():
    layout = FlatLayout([Segment("w", 0, 100, (100,), False, 0)])
    p = build_priority(torch.arange(100, dtype=torch.float32), layout)
    # 0.29 * 100 = 28.999999999999996 in binary; the intended 29 active weights = 2 floor + 27.
    assert candidate_count(0.29, layout, p) == 27
    assert density_of(mask_for(p, 27), layout) == 0.29


def test_floor_is_two_percent_per_layer_and_at_least_one():
    layout = FlatLayout(
        [
            Segment("big", 0, 100, (100,), False, 0),
            Segment("mid", 100, 150, (150,), False, 1),
            Segment("one", 250, 1, (1,), False, 2),
            Segment("ten", 251, 10, (10,), False, 3),
        ]
    )
    score = torch.cat([torch.arange(100.0), torch.arange(150.0), torch.tensor([0.5]), torch.arange(10.0)])
    p = build_priority(score, layout)
    kept = (p == -1).tolist()
    # 100 -> position 98 -> {98, 99}; 150 -> position 147 -> 3 kept; 1 -> itself; 10 -> position 9 -> 1.
    assert [i for i in range(100) if kept[i]] == [98, 99]
    assert [i - 100 for i in range(100, 250) if kept[i]] == [147, 148, 149]
    assert kept[250]
    assert [i - 251 for i in range(251, 261) if kept[i]] == [9]
    # Even density 0 keeps the floor: 2 + 3 + 1 + 1 of 261.
    assert density_of(mask_for(p, candidate_count(0.0, layout, p)), layout) == pytest.approx(7 / 261)


def test_floor_keeps_all_ties_at_threshold():
    layout = FlatLayout([Segment("w", 0, 4, (4,), False, 0)])
    p = build_priority(torch.tensor([1.0, 3.0, 3.0, 3.0]), layout)
    # Sorted [1, 3, 3, 3], threshold at position int(3.92) = 3 is 3: every 3 is kept.
    assert p.tolist() == [0, -1, -1, -1]


def test_floor_score_differs_from_ranking_score():
    layout = FlatLayout([Segment("w", 0, 4, (4,), False, 0)])
    # Floor on [4, 3, 2, 1] keeps position 0; the candidates 1..3 are ranked by the other score.
    p = build_priority(
        torch.tensor([0.0, 1.0, 3.0, 2.0]), layout, floor_score=torch.tensor([4.0, 3.0, 2.0, 1.0])
    )
    assert p.tolist() == [-1, 2, 0, 1]


def test_masks_are_nested_and_full_at_one():
    layout = small_layout()
    nm = NestedMasks.build(SCORE, layout, coefficients=[1.0, 0.25])
    densities = [0.05, 0.1, 0.1, 0.3, 0.5, 0.5, 0.9, 1.0]
    masks = nm.masks(densities)
    for small, large in itertools.pairwise(masks):
        assert not (small & ~large).any()
    assert masks[-1].all()
    assert density_of(masks[-1], layout) == 1.0


def test_non_prunable_always_kept():
    layout = small_layout()
    nm = NestedMasks.build(SCORE, layout)
    for rho in (0.0, 0.1, 0.5):
        assert nm.mask(rho)[10:12].all()


def test_flatten_module_layout_keeps_bias_and_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    layout, flat, _ = flatten_module(model, ["0.weight", "2.weight"])
    nm = NestedMasks.build(flat.abs(), layout)
    m = nm.mask(0.0)
    # Everything that is not a prunable weight (biases, BN affine and running stats) is kept.
    assert m[~layout.prunable].all()
    # Floors: 20 weights -> int(19.6) = 19 -> 1 kept; 10 weights -> int(9.8) = 9 -> 1 kept.
    assert int((m & layout.prunable).sum()) == 2
    assert nm.mask(1.0).all()


def test_cache_and_state_dict_round_trip():
    layout = small_layout()
    nm = NestedMasks.build(SCORE, layout)
    # 0.2 * 15 = 3 and 0.21 * 15 = 3.15: the same count, so the same shared tensor.
    assert nm.mask(0.2) is nm.mask(0.21)
    other = NestedMasks(torch.zeros(17, dtype=torch.int64), layout)
    other.load_state_dict(nm.state_dict())
    assert other.n_floor == 2
    assert torch.equal(other.mask(0.5), nm.mask(0.5))


def test_rejects_bad_inputs():
    layout = small_layout()
    with pytest.raises(ValueError):
        build_priority(torch.zeros(3), layout)
    with pytest.raises(ValueError):
        build_priority(SCORE, layout, coefficients=[1.0])
    with pytest.raises(ValueError):
        candidate_count(1.5, layout, build_priority(SCORE, layout))


@pytest.mark.parametrize("coeffs, norm", [(None, False), ([1.0, 0.25], False), ([1.0, 2.0], True)])
def test_fast_selection_equals_sorted_ranking(coeffs, norm):
    """NestedMasks.build (kthvalue selection) gives exactly the masks of the full stable sort, ties included."""
    layout = small_layout()
    g = torch.Generator().manual_seed(0)
    score = torch.randint(0, 7, (layout.numel,), generator=g).float()  # many ties
    ref = build_priority(score, layout, coeffs, normalize_by_layer_mean=norm)
    fast = NestedMasks.build(score, layout, coeffs, normalize_by_layer_mean=norm)
    slow = NestedMasks(ref, layout)
    for rho in (0.0, 0.05, 0.1, 0.2, 0.33, 0.5, 0.77, 1.0):
        assert torch.equal(fast.mask(rho), mask_for(ref, candidate_count(rho, layout, ref))), rho
        assert torch.equal(fast.mask(rho), slow.mask(rho)), rho
    again = NestedMasks.from_state(fast.state_dict(), layout)
    assert torch.equal(again.mask(0.2), fast.mask(0.2))


@pytest.mark.parametrize("k", [1, 7, 500, 999])
def test_numpy_and_torch_top_k_fill_the_same_mask(k):
    # The CPU path (NumPy) and the torch path (other devices) pick the same candidates, ties broken
    # towards the lowest position, including a k-th value shared by many candidates.
    from fedgmr.masks import _fill_top, _top_numpy
    from fedgmr.selection import kth_smallest

    g = torch.Generator().manual_seed(k)
    n_all = 1500
    positions = torch.sort(torch.randperm(n_all, generator=g)[:1000]).values
    values = torch.randint(0, 40, (1000,), generator=g).to(torch.float64)  # many ties
    kth = kth_smallest(values, 1000 - k + 1)
    a = torch.zeros(n_all, dtype=torch.bool)
    b = torch.zeros(n_all, dtype=torch.bool)
    _fill_top(a, values, positions, kth, k)
    by_position = np.full(n_all, np.nan)
    by_position[positions.numpy()] = values.numpy()
    keep = torch.rand(n_all, generator=g) < 0.1
    keep[positions] = False  # candidates are never always-kept
    b = _top_numpy(by_position, keep.numpy(), kth, k)
    assert int(a.sum()) == k and torch.equal(a | keep, b)
    chosen = values[a[positions]]
    assert bool((chosen >= kth).all()) and int((values > kth).sum()) <= k
