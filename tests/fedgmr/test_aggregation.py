"""Hand-computed checks of every aggregation rule (reference §6)."""

from __future__ import annotations

import pytest
import torch

from fedgmr.aggregation import (
    AGGREGATORS,
    BY_VALUE,
    SLICE,
    buffer_average,
    fa,
    fjord,
    ga,
    in_slice,
    ma,
    merged,
    mix,
)

# Global vector and two arrivals over 6 coordinates. Coverage is by value (released semantics).
W = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
UA = torch.tensor([10.0, 0.0, 6.0, 0.0, 0.0, 6.0])  # covers 0, 2, 5
UB = torch.tensor([20.0, 4.0, 0.0, 0.0, 0.0, -2.0])  # covers 0, 1, 5
UPLOADS = [UA, UB]
COVER = [UA != 0, UB != 0]
C = [0.25, 0.75]


def close(actual: torch.Tensor, expected: list[float]) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected), rtol=0, atol=1e-6)


def test_merged_value():
    # 0: (0.25*10 + 0.75*20) / (0.25 + 0.75) = 17.5
    # 1: 0.75*4 / 0.75 = 4        2: 0.25*6 / 0.25 = 6
    # 3, 4: nobody covers -> w = 4, 5
    # 5: (0.25*6 + 0.75*(-2)) / 1 = 0 exactly -> replaced by w = 6
    close(merged(W, UPLOADS, COVER, C), [17.5, 4.0, 6.0, 4.0, 5.0, 6.0])


def test_ma_replaces_covered_coordinates():
    out = ma(W, UPLOADS, COVER, C, beta=0.123)  # beta is ignored by MA
    close(out, [17.5, 4.0, 6.0, 4.0, 5.0, 6.0])
    # Only the ratio of coefficients matters: 1 and 3 give the same merge.
    close(ma(W, UPLOADS, COVER, [1.0, 3.0], 1.0), [17.5, 4.0, 6.0, 4.0, 5.0, 6.0])


def test_mix_blends_with_beta():
    # 0.5 * merged + 0.5 * w = [0.5*17.5 + 0.5, 0.5*4 + 1, 0.5*6 + 1.5, 4, 5, 6]
    close(mix(W, UPLOADS, COVER, C, beta=0.5), [9.25, 3.0, 4.5, 4.0, 5.0, 6.0])
    # beta = 0 keeps w, beta = 1 is MA.
    close(mix(W, UPLOADS, COVER, C, beta=0.0), W.tolist())
    close(mix(W, UPLOADS, COVER, C, beta=1.0), [17.5, 4.0, 6.0, 4.0, 5.0, 6.0])


def test_ga_denominator_ignores_coverage():
    # w + sum c m (u - w) / sum c, with sum c = 1:
    # 0: 1 + 0.25*9 + 0.75*19 = 17.5
    # 1: 2 + 0.75*(4-2) = 3.5   (MA gives 4: only client B covers it, yet it moves 3/4 of the way)
    # 2: 3 + 0.25*(6-3) = 3.75
    # 3, 4: unchanged
    # 5: 6 + 0.25*0 + 0.75*(-2-6) = 0
    close(ga(W, UPLOADS, COVER, C, 1.0), [17.5, 3.5, 3.75, 4.0, 5.0, 0.0])
    # Coefficients summing to 2 (0.5, 1.5) are normalised: same result.
    close(ga(W, UPLOADS, COVER, [0.5, 1.5], 1.0), [17.5, 3.5, 3.75, 4.0, 5.0, 0.0])


def test_fa_is_zero_filled():
    # sum c u / sum c: [17.5, 0.75*4, 0.25*6, 0, 0, 0.25*6 - 0.75*2] = [17.5, 3, 1.5, 0, 0, 0]
    close(fa(W, UPLOADS, COVER, C, 1.0), [17.5, 3.0, 1.5, 0.0, 0.0, 0.0])


def test_fjord_is_unweighted():
    # (sum u) / (number of non-zero uploads): 0: 30/2, 1: 4/1, 2: 6/1, 3-4: w, 5: (6 - 2)/2 = 2
    close(fjord(W, UPLOADS, COVER, [0.9, 0.1], 1.0), [15.0, 4.0, 6.0, 4.0, 5.0, 2.0])


def test_fjord_multiplies_by_width_mask_first():
    # Client A's width mask only covers coordinate 0: its 6s at 2 and 5 are dropped.
    cover = [torch.tensor([True, False, False, False, False, False]), UB != 0]
    # 0: 30/2 = 15, 1: 4, 2: w = 3, 5: -2/1 = -2
    close(fjord(W, UPLOADS, cover, None, 1.0), [15.0, 4.0, 3.0, 4.0, 5.0, -2.0])


def test_fjord_zero_sum_keeps_w():
    ua = torch.tensor([1.0, 0.0])
    ub = torch.tensor([-1.0, 2.0])
    close(fjord(torch.tensor([7.0, 8.0]), [ua, ub], [ua != 0, ub != 0], None, 1.0), [7.0, 2.0])


def test_clean_coverage_drops_leaks_and_counts_masked_zeros():
    w = torch.tensor([1.0, 2.0, 3.0])
    # Client A's mask is {0, 1}; it leaked 0.5 at coordinate 2 (momentum, B6) and trained
    # coordinate 1 to exactly 0.
    ua = torch.tensor([4.0, 0.0, 0.5])
    ub = torch.tensor([8.0, 6.0, 0.0])
    c = [0.5, 0.5]
    released = [ua != 0, ub != 0]
    clean = [torch.tensor([True, True, False]), torch.tensor([True, True, False])]
    # Released: 0: 6; 1: only B -> 6; 2: the leak counts as coverage -> 0.5
    close(ma(w, [ua, ub], released, c, 1.0), [6.0, 6.0, 0.5])
    # Clean: 0: 6; 1: (0 + 0.5*6)/(0.5 + 0.5) = 3; 2: nobody covers -> w = 3
    close(ma(w, [ua, ub], clean, c, 1.0), [6.0, 3.0, 3.0])


def test_buffer_average():
    # Zero-filled, not mask-aware: same numbers as FA; coefficients normalised by their sum (1 + 3).
    close(buffer_average(UPLOADS, [1.0, 3.0]), [17.5, 3.0, 1.5, 0.0, 0.0, 0.0])
    # Three clients: (2*[1,2] + 1*[4,0] + 1*[0,8]) / 4 = [1.5, 3]
    out = buffer_average(
        [torch.tensor([1.0, 2.0]), torch.tensor([4.0, 0.0]), torch.tensor([0.0, 8.0])], [2, 1, 1]
    )
    close(out, [1.5, 3.0])
    with pytest.raises(ValueError):
        buffer_average(UPLOADS, [0.0, 0.0])


def test_no_arrivals_keep_w_and_inputs_untouched():
    before = [W.clone(), UA.clone(), UB.clone()]
    for name, rule in AGGREGATORS.items():
        out = rule(W, [], [], [], 0.0)
        close(out, W.tolist())
        assert out.data_ptr() != W.data_ptr(), name
        rule(W, UPLOADS, COVER, C, 0.5)
    for t, b in zip([W, UA, UB], before):
        assert torch.equal(t, b)


def test_registry_and_shape_checks():
    assert set(AGGREGATORS) == {"ma", "mix", "ga", "fa", "fjord"}
    with pytest.raises(ValueError):
        ma(W, UPLOADS, COVER[:1], C, 1.0)
    with pytest.raises(TypeError):
        ma(W, UPLOADS, [UA, UB], C, 1.0)  # coverage must be boolean


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_by_value_coverage_is_the_uploads_nonzeros_bit_for_bit(name):
    # BY_VALUE (released coverage, never materialised as a bool vector where a rule can do without it)
    # must give the very bits of passing ``upload != 0``: zeros, -0.0, values that cancel in the sum.
    g = torch.Generator().manual_seed(5)
    w = torch.randn(4000, generator=g)
    uploads = []
    for k in range(4):
        u = torch.randn(4000, generator=g) * (k + 1)
        u[torch.rand(4000, generator=g) < 0.3 + 0.1 * k] = 0.0
        u[k::97] = -0.0
        uploads.append(u)
    uploads[1][:50] = -uploads[0][:50]  # sums that cancel to exactly 0
    coeffs = [0.4, 0.3, 0.2, 0.1]
    rule = AGGREGATORS[name]
    explicit = rule(w, uploads, [u != 0 for u in uploads], coeffs, 0.6)
    by_value = rule(w, uploads, [BY_VALUE] * 4, coeffs, 0.6)
    assert torch.equal(explicit.view(torch.int32), by_value.view(torch.int32))
    mixed = rule(w, uploads, [BY_VALUE, uploads[1] != 0, BY_VALUE, uploads[3] != 0], coeffs, 0.6)
    assert torch.equal(explicit.view(torch.int32), mixed.view(torch.int32))


def test_by_value_on_a_leaky_upload_differs_from_its_mask():
    # Value coverage counts a leak outside the mask (B6); the mask drops it: not interchangeable.
    w = torch.tensor([1.0, 2.0, 3.0])
    u = torch.tensor([4.0, 0.0, 0.5])
    close(fa(w, [u], [BY_VALUE], [1.0], 1.0), [4.0, 0.0, 0.5])
    close(fa(w, [u], [torch.tensor([True, True, False])], [1.0], 1.0), [4.0, 0.0, 0.0])


def test_unknown_coverage_string_is_rejected():
    with pytest.raises(ValueError, match="by_value"):
        ma(W, UPLOADS, ["nonzero", BY_VALUE], C, 1.0)


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_slice_coverage_touches_the_slice_only_with_the_same_bits(name):
    # Width-sliced uploads are zero outside their slice; in_slice lets a rule work on the slice alone.
    # Released (by value) and clean (the whole slice) must give the bits of the explicit bool masks.
    g = torch.Generator().manual_seed(11)
    n = 5000
    w = torch.randn(n, generator=g)
    scattered = torch.sort(torch.randperm(n, generator=g)[:3100]).values
    slices = [torch.arange(0, 1200), scattered, torch.arange(n)]
    _check_slices_against_explicit_masks(AGGREGATORS[name], w, slices, [0.5, 0.3, 0.2], g)
    assert in_slice(slices[0], False)[0] == SLICE


def _check_slices_against_explicit_masks(rule, w, slices, coeffs, g) -> None:
    """``rule`` on uploads zero outside their ``slices`` (exact zeros, -0.0 and sums cancelling to 0
    inside them), with ``in_slice`` coverage, has the bits of the same rule on explicit bool masks."""
    n = w.numel()
    uploads, explicit_slice = [], []
    for k, idx in enumerate(slices):
        part = torch.randn(idx.numel(), generator=g) * (k + 1)
        part[torch.rand(idx.numel(), generator=g) < 0.2] = 0.0  # trained to exactly 0 inside the slice
        part[k::53] = -0.0
        uploads.append(torch.zeros(n).index_copy_(0, idx, part))
        explicit_slice.append(torch.zeros(n, dtype=torch.bool).index_fill_(0, idx, True))
    both = explicit_slice[0] & explicit_slice[1]
    uploads[1][both] = -uploads[0][both]  # sums cancelling to exactly 0 (still zero outside the slice)
    explicit_value = [u != 0 for u in uploads]
    bits = lambda t: t.view(torch.int32)  # noqa: E731
    for by_value, explicit in ((True, explicit_value), (False, explicit_slice)):
        want = rule(w, uploads, explicit, coeffs, 0.6)
        got = rule(w, uploads, [in_slice(idx, by_value) for idx in slices], coeffs, 0.6)
        assert torch.equal(bits(want), bits(got)), by_value


def test_bad_slice_coverage_is_rejected():
    with pytest.raises(ValueError, match="in_slice"):
        ma(W, UPLOADS, [("window", torch.arange(3)), BY_VALUE], C, 1.0)
    with pytest.raises(ValueError, match="in_slice"):
        ma(W, UPLOADS, [(BY_VALUE, torch.arange(3.0)), BY_VALUE], C, 1.0)


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_width_slices_update_in_place_with_the_bits_of_explicit_masks(name):
    # The LEAF CNN's real width slices (HeteroFL front slices, FedRolex windows that wrap around) are
    # strided blocks, so MA and FjORD's rule add through views of the accumulators instead of gathering
    # and scattering the slice; the bits must be those of explicit full-size masks.
    from fedgmr.index_map import views
    from tests.fedgmr.test_index_map import _maps

    maps = _maps("fedrolex", (0, 37))[0]
    with pytest.raises(ValueError, match="different shapes"):
        views(maps[0], torch.zeros(10), torch.zeros(11))
    n = int(max(int(idx.max()) for idx in maps)) + 1
    g = torch.Generator().manual_seed(5)
    w = torch.randn(n, generator=g)
    assert all(views(idx, w) is not None for idx in maps)  # the in-place path is the one tested
    coeffs = [0.1 * (k + 1) for k in range(len(maps))]
    _check_slices_against_explicit_masks(AGGREGATORS[name], w, maps, coeffs, g)


def _merged_by_accumulating(w, uploads, coverage, coeffs):
    """The merged value as §6 writes it: both accumulators zero-filled, every upload added."""
    num, den = torch.zeros_like(w), torch.zeros_like(w)
    for u, m, c in zip(uploads, coverage, coeffs):
        mf = (u != 0 if isinstance(m, str) else m).to(w.dtype)
        num.addcmul_(u, mf, value=c)
        den.add_(mf, alpha=c)
    q = num / den
    return torch.where((q == 0) | (den == 0), w, q)


def _fjord_by_accumulating(w, uploads, coverage):
    """FjORD's rule as §6.5 writes it: uploads restricted to their coverage, summed and counted from zeros."""
    num, den = torch.zeros_like(w), torch.zeros_like(w)
    for u, m in zip(uploads, coverage):
        v = u if isinstance(m, str) else u * m.to(w.dtype)
        num.add_(v)
        den.add_((v != 0).to(w.dtype))
    q = num / den
    return torch.where((q == 0) | (den == 0), w, q)


@pytest.mark.parametrize("first", ["by_value", "mask", "slice"])
@pytest.mark.parametrize("count", [1, 3])
def test_a_first_upload_written_not_accumulated_merges_the_same_bits(first, count):
    # ``merged`` writes the first full-size upload's accumulators instead of adding it to zeros: the
    # same bits as accumulating for zeros of either sign, underflows, NaN, inf and leaks outside a mask.
    g = torch.Generator().manual_seed(11)
    n = 3000
    w = torch.randn(n, generator=g)
    uploads, coverage = [], []
    for k in range(count):
        u = torch.randn(n, generator=g)
        u[torch.rand(n, generator=g) < 0.3] = 0.0
        u[k::31] = -0.0
        u[5 + k :: 101] = -1e-45  # c * u underflows to -0.0
        u[7 + k :: 211] = float("nan")
        u[11 + k :: 223] = float("-inf")
        uploads.append(u)
        coverage.append(BY_VALUE)
    if first == "mask":  # clean coverage with values leaked outside the mask (B6), NaN among them
        coverage[0] = torch.rand(n, generator=g) < 0.5
    if first == "slice":  # a first upload that is not full size: accumulated into zeros as before
        idx = torch.arange(0, n, 3)
        uploads[0][torch.ones(n, dtype=torch.bool).index_fill_(0, idx, False)] = 0.0
        coverage[0] = in_slice(idx, by_value=True)
    coeffs = [0.3, 0.45, 0.25][:count]
    explicit = [BY_VALUE if c == BY_VALUE or isinstance(c, tuple) else c for c in coverage]
    before = [u.clone() for u in uploads]
    want = _merged_by_accumulating(w, uploads, explicit, coeffs)
    got = merged(w, uploads, coverage, coeffs)
    assert torch.equal(got.view(torch.int32), want.view(torch.int32))
    assert torch.equal(
        mix(w, uploads, coverage, coeffs, 0.6).view(torch.int32),
        want.mul(0.6).add_(w, alpha=0.4).view(torch.int32),
    )
    got = fjord(w, uploads, coverage)
    assert torch.equal(got.view(torch.int32), _fjord_by_accumulating(w, uploads, explicit).view(torch.int32))
    assert all(torch.equal(u.view(torch.int32), v.view(torch.int32)) for u, v in zip(uploads, before))
