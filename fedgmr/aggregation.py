"""Server aggregation rules over flat parameter vectors (reference §6, `PRF` ``aggregate_model`` L1541).

Every rule merges this round's arrivals ``A`` into the global vector ``w`` and returns a new vector;
``w`` and the uploads are never modified. The rules stream over the arrivals with two accumulators of
the model's size, so memory does not grow with the number of arrivals.

Common arguments:

* ``uploads[i]``: the dense upload of arrival i (zeros outside its sub-model).
* ``coverage[i]``: which coordinates arrival i covers: a bool tensor, :data:`BY_VALUE`, or
  :func:`in_slice` of an index map. The released code detects coverage by value (``upload != 0``, §6
  and B6), passed as :data:`BY_VALUE`; the clean semantics pass the mask the client was given. An upload
  only contributes on its coverage, which with value coverage changes nothing. A width-sliced upload is
  zero outside its slice; ``in_slice`` says so, and MA and FjORD's rule then touch only the slice's
  positions (the same numbers: adding 0 elsewhere changes no accumulator).
* ``coeffs[i]``: the coefficient actually used for arrival i (``c̃_i n_i``; with the released
  mis-indexing B2, see :meth:`fedgmr.staleness.Staleness.arrival_coefficients`). Sample counts
  ``n_i`` are equal for all clients in the paper's setting, so callers may pass staleness
  coefficients alone.
* ``beta``: the mixing weight ``β = Σ_{i∈A} c_i`` with correct indices (§3.7), used by ``mix``.

The shared *merged* value is ``Σ c_i m_i w_i / Σ c_i m_i`` per coordinate; where the denominator is 0,
or the merged value is exactly 0, it is replaced by ``w`` (§6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from fedgmr.flat import as_float, nonzero
from fedgmr.index_map import gather, scatter_, views

__all__ = [
    "AGGREGATORS",
    "BY_VALUE",
    "SLICE",
    "Aggregator",
    "Coverage",
    "buffer_average",
    "cover_mask",
    "fa",
    "fjord",
    "ga",
    "in_slice",
    "ma",
    "merged",
    "mix",
]

BY_VALUE = "by_value"
"""Coverage detected by value: the upload's non-zero coordinates (the released rule, §6).

An upload has no non-zero outside this coverage, so restricting it to its coverage is the identity:
FA and FjORD's numerator use the upload as it is, and the bool vector is only built where a rule
counts coverage (MA's denominator, FjORD's count, GA's restricted difference). A plain string, so
that a checkpoint holding it still loads with ``torch.load(weights_only=True)``."""

SLICE = "slice"  # with in_slice: every position of the slice is covered (clean width-sliced coverage)

# A bool tensor, BY_VALUE, or in_slice(idx, by_value): a plain tuple (str, int64 tensor), checkpointable.
Coverage = torch.Tensor | str | tuple[str, torch.Tensor]


def in_slice(idx: torch.Tensor, by_value: bool) -> tuple[str, torch.Tensor]:
    """Coverage of an upload that is zero outside the positions ``idx`` (a width slice): its non-zeros
    there (``by_value``, released) or every position of ``idx`` (clean)."""
    return (BY_VALUE if by_value else SLICE, idx)

Aggregator = Callable[
    [torch.Tensor, Sequence[torch.Tensor], Sequence[Coverage], Sequence[float], float], torch.Tensor
]


def _check(
    w: torch.Tensor,
    uploads: Sequence[torch.Tensor],
    coverage: Sequence[Coverage],
    coeffs: Sequence[float] | None,
) -> None:
    if len(uploads) != len(coverage) or (coeffs is not None and len(coeffs) != len(uploads)):
        raise ValueError(
            f"uploads ({len(uploads)}), coverage ({len(coverage)}) and coeffs "
            f"({'-' if coeffs is None else len(coeffs)}) must have the same length"
        )
    for u, m in zip(uploads, coverage):
        if u.shape != w.shape:
            raise ValueError(f"uploads must have the global shape {tuple(w.shape)}")
        if _by_value(m) or _slice(m) is not None:
            continue
        if m.shape != w.shape:
            raise ValueError(f"coverage must have the global shape {tuple(w.shape)}")
        if m.dtype != torch.bool:
            raise TypeError("coverage must be a bool tensor, BY_VALUE or in_slice(...)")


def _by_value(cover: Coverage) -> bool:
    if isinstance(cover, str):
        if cover != BY_VALUE:
            raise ValueError(f"coverage must be a bool tensor, {BY_VALUE!r} or in_slice(...), not {cover!r}")
        return True
    return False


def _slice(cover: Coverage) -> torch.Tensor | None:
    """The index map of an :func:`in_slice` coverage, else None."""
    if not isinstance(cover, tuple):
        return None
    if len(cover) != 2 or cover[0] not in (BY_VALUE, SLICE) or cover[1].dtype != torch.int64:
        raise ValueError(f"a slice coverage is in_slice(idx, by_value), not {cover!r}")
    return cover[1]


def _slice_mask(part: torch.Tensor, cover: tuple[str, torch.Tensor]) -> torch.Tensor:
    """What the upload's values ``part`` at the slice's positions cover, as a bool tensor."""
    return nonzero(part) if cover[0] == BY_VALUE else torch.ones_like(part, dtype=torch.bool)


def _slice_weight(part: torch.Tensor, cover: tuple[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """:func:`_slice_mask` as 0/1 floats of ``dtype`` (one comparison writing floats: no bool pass)."""
    if cover[0] == BY_VALUE:
        return _nonzero_float(part, None, dtype)
    return torch.ones(part.shape, dtype=dtype, device=part.device)


def cover_mask(upload: torch.Tensor, cover: Coverage) -> torch.Tensor:
    """The coordinates ``upload`` covers, as a full-size bool tensor."""
    idx = _slice(cover)
    if idx is not None:
        out = torch.zeros_like(upload, dtype=torch.bool)
        return scatter_(out, idx, _slice_mask(gather(upload, idx), cover))
    return nonzero(upload) if _by_value(cover) else cover


def _add_at(acc: torch.Tensor, idx: torch.Tensor, update) -> None:
    """``acc[idx] = update(acc[idx])``: an in-place update of the slice's positions only."""
    scatter_(acc, idx, update(gather(acc, idx)))


def _covered(values: torch.Tensor, upload: torch.Tensor, cover: Coverage) -> torch.Tensor:
    # ``values`` (the upload, or a difference from it) restricted to the upload's coverage. For an
    # explicit mask it drops values leaked outside the mask (B6) instead of letting them into the
    # numerator; the upload itself under value coverage is returned as it is (nothing to drop).
    # A float multiply is ~5x faster than torch.where on CPU (this runs per arrival, per round).
    if values is upload and _by_value(cover):
        return upload
    return values * as_float(cover_mask(upload, cover), values.dtype)


def _replace_empty(
    w: torch.Tensor, num: torch.Tensor, den: torch.Tensor, scratch: torch.Tensor | None = None
) -> torch.Tensor:
    """``num / den``, with ``w`` wherever ``den == 0`` or the quotient is exactly 0.

    ``num`` and ``den`` are the caller's own accumulators: the quotient is written into ``num`` (and
    returned), ``den`` and ``scratch`` (a float vector of the same shape, or None) are overwritten.
    """
    # 0/0 gives nan where nobody covered a coordinate; num/den is exactly 0 only when num is. Both
    # keep the old value: a merged 0 is indistinguishable from "nobody covered it" in the released
    # value-based bookkeeping (§6). The two tests are written as 0/1 floats and added (on this CPU a
    # comparison writing floats is ~4x faster than one writing bools), then one torch.where in place.
    out = num.div_(den)
    empty = torch.eq(out, 0, out=scratch if scratch is not None else torch.empty_like(out))
    empty.add_(torch.eq(den, 0, out=den))
    return torch.where(empty.bool(), w, out, out=out)


def _nonzero_float(values: torch.Tensor, out: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """``values != 0`` as 0/1 floats of ``dtype``, written into ``out`` when given (NaN counts as
    non-zero, -0.0 as zero: the same as ``as_float(nonzero(values))``, in one pass)."""
    if out is None:  # contiguous, whatever the strides of ``values`` (a view of a slice's block)
        out = torch.empty(values.shape, dtype=dtype, device=values.device)
    return torch.ne(values, 0, out=out)


def merged(
    w: torch.Tensor,
    uploads: Sequence[torch.Tensor],
    coverage: Sequence[Coverage],
    coeffs: Sequence[float],
) -> torch.Tensor:
    """Coverage-normalised weighted merge ``Σ c_i m_i w_i / Σ c_i m_i``, ``w`` where empty or 0 (§6)."""
    _check(w, uploads, coverage, coeffs)
    num = den = None
    scratch = None  # one float mask vector, reused by every full-size upload covered by value
    for u, m, c in zip(uploads, coverage, coeffs):
        idx = _slice(m)
        if idx is None and num is None:
            num, den = _first(u, m, float(c), w.dtype)
            continue
        if num is None:
            num, den = torch.zeros_like(w), torch.zeros_like(w)
        if idx is None:
            if _by_value(m):
                mf = scratch = _nonzero_float(u, scratch, w.dtype)
            else:
                mf = as_float(cover_mask(u, m), w.dtype)
            num.addcmul_(u, mf, value=float(c))
            den.add_(mf, alpha=float(c))
        elif (blocks := views(idx, u, num, den)) is not None:  # in place on the slice's positions
            for ub, nb, db in blocks:  # elementwise: the same bits as over the full vector
                mf = _slice_weight(ub, m, w.dtype)
                nb.addcmul_(ub, mf, value=float(c))
                db.add_(mf, alpha=float(c))
        else:
            part = gather(u, idx)
            mf = _slice_weight(part, m, w.dtype)
            _add_at(num, idx, lambda x: x.addcmul_(part, mf, value=float(c)))
            _add_at(den, idx, lambda x: x.add_(mf, alpha=float(c)))
    if num is None:  # no uploads
        num, den = torch.zeros_like(w), torch.zeros_like(w)
    return _replace_empty(w, num, den, scratch)


def _first(
    u: torch.Tensor, cover: Coverage, c: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The accumulators after a first, full-size upload: ``(c·u·m, c·m)``, written, not added to zeros.

    Two passes fewer than zero-filling both and accumulating (this runs once per merge). The values are
    those of accumulating, but for the sign of some zeros of the numerator (``c·u`` of a ``-0.0`` upload,
    or an underflow, instead of ``+0.0``): no result can see it, since a merged value of 0 of either sign
    takes ``w`` in :func:`_replace_empty`, and ``-0.0 + x == +0.0 + x`` for every ``x != 0``.
    """
    num = torch.mul(u, c)  # == (c * u) * 1 of addcmul_ where covered; a zero of either sign elsewhere
    if _by_value(cover):
        den = _nonzero_float(u, None, dtype)
    else:  # an explicit mask: drop what the upload leaked outside it (B6), as ``* m`` does
        den = as_float(cover_mask(u, cover), dtype)
        num.mul_(den)
    return num, den.mul_(c)


def ma(
    w: torch.Tensor,
    uploads: Sequence[torch.Tensor],
    coverage: Sequence[Coverage],
    coeffs: Sequence[float],
    beta: float = 1.0,
) -> torch.Tensor:
    """MA, FedGMR's mask-aware aggregation (§6.1, ``buff_mask_fed_avg`` / ``heterofl``).

    Covered coordinates are replaced by the merged value; the others keep ``w``. No mixing, so
    ``beta`` is ignored.
    """
    return merged(w, uploads, coverage, coeffs)


def mix(
    w: torch.Tensor,
    uploads: Sequence[torch.Tensor],
    coverage: Sequence[Coverage],
    coeffs: Sequence[float],
    beta: float,
) -> torch.Tensor:
    """w/o Buff and FedAsync (§6.2): ``β·merged + (1 − β)·w``."""
    m = merged(w, uploads, coverage, coeffs)
    return m.mul_(beta).add_(w, alpha=1.0 - beta)


def ga(
    w: torch.Tensor,
    uploads: Sequence[torch.Tensor],
    coverage: Sequence[Coverage],
    coeffs: Sequence[float],
    beta: float = 1.0,
) -> torch.Tensor:
    """GA, gradient averaging (§6.3): ``w + Σ c_i m_i (w_i − w) / Σ c_i``.

    The denominator ignores coverage, so a coordinate covered by few arrivals moves only part of the
    way. ``beta`` is ignored. With ``Σ c_i = 0`` (no weight at all) ``w`` is returned unchanged; the
    released code would divide by zero, which cannot happen once every client has arrived once.
    """
    _check(w, uploads, coverage, coeffs)
    total = float(sum(float(c) for c in coeffs))
    if total == 0.0:
        return w.clone()
    step = torch.zeros_like(w)
    for u, m, c in zip(uploads, coverage, coeffs):
        step.add_(_covered(u - w, u, m), alpha=float(c))
    return step.div_(total).add_(w)


def fa(
    w: torch.Tensor,
    uploads: Sequence[torch.Tensor],
    coverage: Sequence[Coverage],
    coeffs: Sequence[float],
    beta: float = 1.0,
) -> torch.Tensor:
    """FA, zero-filled average (§6.4, ``buff_fed_avg`` / ``fed_avg``): ``Σ c_i w_i / Σ c_i``.

    Not mask-aware: uncovered coordinates are pulled towards 0. ``beta`` is ignored; ``Σ c_i = 0``
    returns ``w`` unchanged (see :func:`ga`).
    """
    _check(w, uploads, coverage, coeffs)
    total = float(sum(float(c) for c in coeffs))
    if total == 0.0:
        return w.clone()
    acc = torch.zeros_like(w)
    for u, m, c in zip(uploads, coverage, coeffs):
        acc.add_(_covered(u, u, m), alpha=float(c))
    return acc.div_(total)


def fjord(
    w: torch.Tensor,
    uploads: Sequence[torch.Tensor],
    coverage: Sequence[Coverage],
    coeffs: Sequence[float] | None = None,
    beta: float = 1.0,
) -> torch.Tensor:
    """FjORD's unweighted aggregation (§6.5, `FJT` ``main``).

    Each upload is first multiplied by its coverage (the client's current width mask); then
    ``Σ w_i / Σ 1[w_i ≠ 0]`` on covered coordinates, ``w`` elsewhere and where the sum is exactly 0.
    The count is by value after masking, as in the released code. ``coeffs`` and ``beta`` are ignored.
    """
    _check(w, uploads, coverage, None)
    num = den = None
    scratch = None
    for u, m in zip(uploads, coverage):
        idx = _slice(m)
        if idx is None and num is None:  # written, not added to zeros: the same values (see _first)
            v = _covered(u, u, m)
            num, den = (v.clone() if v is u else v), _nonzero_float(v, None, w.dtype)
            continue
        if num is None:
            num, den = torch.zeros_like(w), torch.zeros_like(w)
        if idx is None:
            v = _covered(u, u, m)
            num.add_(v)
            den.add_(scratch := _nonzero_float(v, scratch, w.dtype))
        elif (blocks := views(idx, u, num, den)) is not None:  # the upload is zero outside its slice
            for ub, nb, db in blocks:  # and covered on it: multiplying changes nothing
                nb.add_(ub)
                db.add_(_nonzero_float(ub, None, w.dtype))
        else:
            part = gather(u, idx)
            _add_at(num, idx, lambda x: x.add_(part))
            _add_at(den, idx, lambda x: x.add_(_nonzero_float(part, None, w.dtype)))
    if num is None:  # no uploads
        num, den = torch.zeros_like(w), torch.zeros_like(w)
    return _replace_empty(w, num, den, scratch)


def buffer_average(uploads: Sequence[torch.Tensor], coeffs: Sequence[float]) -> torch.Tensor:
    """Evaluation-only buffer average (§6.6, ``fed_avg_model``): ``Σ c_i w_i / Σ c_i``.

    Zero-filled and not mask-aware, over the latest upload of every client. Its accuracy is the
    global GMR signal (B14) and half of the reported accuracy.

    Raises:
        ValueError: with no uploads or ``Σ c_i = 0``.
    """
    if len(uploads) == 0 or len(uploads) != len(coeffs):
        raise ValueError(f"need one coefficient per upload and at least one upload ({len(uploads)})")
    total = float(sum(float(c) for c in coeffs))
    if total == 0.0:
        raise ValueError("buffer_average: the coefficients sum to 0")
    acc = torch.zeros_like(uploads[0])
    for u, c in zip(uploads, coeffs):
        if u.shape != acc.shape:
            raise ValueError("all uploads must have the same shape")
        acc.add_(u, alpha=float(c))
    return acc.div_(total)


AGGREGATORS: dict[str, Aggregator] = {
    "ma": ma,
    "mix": mix,
    "ga": ga,
    "fa": fa,
    "fjord": fjord,
}
