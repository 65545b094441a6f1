"""Released FIARSE's plain-SGD local steps, computed on the weights that can move (reference §7.6, B3).

A released FIARSE step (:meth:`fedgmr.methods.fiarse.FIARSE.train_gated`) runs the forward on ``w ⊙ m``,
``m = 1[|w| ≥ θ] ⊙ client mask ⊙ bias gates`` recomputed from the current ``w``, and masks the gradient
by ``m``. With plain SGD (no momentum, no weight decay, no re-masking after the step: FEMNIST and
CIFAR-10 as released) a weight outside ``m`` takes the step ``-lr · (g · 0) = 0``, so it keeps its value,
stays under its threshold and never enters ``m`` again; a bias gate, once closed, stays closed (its
unit only loses weights). The weights that can move in a whole training are those of the first step's
``m``: for the LEAF CNN the 2 % floor of each threshold layer and the unthresholded rest (150,847 of its
6.6 M coordinates, 2.3 %, in each training of a 5-round ``benchmarks/engine.py --method fiarse`` run).
:func:`train_kept` therefore gathers the gradient at those positions only, updates them there and writes
the forward's weights back there, instead of five passes over the whole vector per step (|w|, the
comparison, the client mask, ``w ⊙ m``, ``g ⊙ m``), which made a released FIARSE step about twice a plain
one on the CPU.

The same arithmetic on the same values, so the same numbers, with one difference that no result can
see: a weight outside ``m`` that is ``-0.0`` (the start is ``w ⊙ mask``, so every masked-out negative
weight is) stays ``-0.0``, where the dense step's ``-0.0 + (-lr)(g · 0)`` turns it into ``+0.0`` when
``g < 0``. Zeros of either sign weigh nothing in the merge and compute nothing.
A non-finite gradient (which the dense step would spread as NaN over the weights outside ``m``) hands
the rest of the training back to the dense steps, from that very step on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from fedgmr.bias_gating import gate_biases_by_value_
from fedgmr.flat import as_float
from fedgmr.training import Trainer


def released_mask_(
    w: torch.Tensor,
    theta: torch.Tensor,
    fmask: torch.Tensor | None,
    layers: list[tuple],
    scratch: list[torch.Tensor],
) -> torch.Tensor:
    """``1[|w| ≥ θ] ⊙ fmask`` with the biases of units without a kept weight gated, as 0/1 floats in
    ``scratch[1]`` (``scratch[0]`` holds |w|)."""
    m = torch.ge(torch.abs(w, out=scratch[0]), theta, out=scratch[1])
    if fmask is not None:
        m.mul_(fmask)
    if layers:
        gate_biases_by_value_(m, layers)
    return m


def applies(tr: Trainer, momentum: torch.Tensor | None, remask: bool, surrogate: bool) -> bool:
    """Whether a weight outside the first step's mask keeps its value for the whole training."""
    plain = not tr.weight_decay and (momentum is None or not tr.momentum)
    return plain and not remask and not surrogate and not tr.has_buffers


@dataclass(frozen=True)
class Plan:
    """What a training from one start needs about its kept positions (read-only: clients of one density
    share it). Positions are those of the first step's mask, ascending."""

    kept: torch.Tensor  # int64 positions
    m_k: torch.Tensor  # the mask there (bias gates applied)
    pre_k: torch.Tensor  # the mask there before the bias gates
    theta_k: torch.Tensor
    fmask_k: torch.Tensor | None
    parts: list[tuple[int, int, torch.Tensor]]  # per parameter: its slice of ``kept``, positions inside it


def plan(
    tr: Trainer, start: torch.Tensor, theta: torch.Tensor, mask: torch.Tensor | None, layers: list
) -> Plan:
    """The :class:`Plan` of a training from ``start`` (one pass over the model: the first step's mask)."""
    fmask = None if mask is None else as_float(mask, start.dtype)
    m = released_mask_(start, theta, fmask, layers, [torch.empty_like(start) for _ in range(2)])
    kept = _positions(m)
    theta_k = theta[kept]
    fmask_k = None if fmask is None else fmask[kept]
    m_k = m[kept]
    pre_k = m_k if not layers else _pre_gate(start[kept], theta_k, fmask_k)
    parts = []
    for seg in tr.param_segments:
        lo, hi = (int(torch.searchsorted(kept, v)) for v in (seg.start, seg.stop))
        parts.append((lo, hi, kept[lo:hi] - seg.start))
    return Plan(kept, m_k, pre_k, theta_k, fmask_k, parts)


def _dense(w: torch.Tensor, kept: torch.Tensor, m_k: torch.Tensor, layers: list) -> torch.Tensor:
    """The whole mask from its kept positions (0 elsewhere, as the dense steps' mask is there), bias
    gates applied again when ``layers``."""
    m = torch.zeros_like(w).index_copy_(0, kept, m_k)
    return gate_biases_by_value_(m, layers) if layers else m


def _finite(grads: list[torch.Tensor | None]) -> bool:
    """No NaN or infinity in any gradient (a sum overflowing to infinity also says no: always safe)."""
    sums = [g.sum() for g in grads if g is not None]
    return not sums or bool(torch.isfinite(torch.stack(sums)).all())


def train_kept(
    tr: Trainer,
    w: torch.Tensor,
    p: Plan,
    layers: list[tuple],
    batches: Iterator,
    lr: float,
    count: Callable[[], None],
) -> bool:
    """Released FIARSE's steps over ``batches`` on the flat weights ``w`` (the start ``p`` was planned
    for), in place (see the module docstring); ``count()`` once per step. Returns True when every batch
    was used; False when a non-finite gradient ended the run early: that step is done, densely, and the
    caller goes on densely with the batches left."""
    kept, m_k, pre_k = p.kept, p.m_k, p.pre_k
    w_k = w[kept]
    g_k = torch.empty_like(w_k)
    with torch.no_grad():  # the forward's weights w ⊙ m: w · 0 (the same bits) off the kept positions
        torch.mul(w, 0.0, out=tr.work).index_copy_(0, kept, torch.mul(w_k, m_k))
    for x, y in batches:
        count()
        for q in tr.params:
            q.grad = None
        tr.loss(tr.model(x), y).backward()
        grads = [q.grad for q in tr.params]
        if not _finite(grads):
            w.index_copy_(0, kept, w_k)
            m = _dense(w, kept, m_k, [])
            flat_grad = torch.zeros_like(w)
            for g, q, b in zip(tr.param_views(flat_grad), grads, tr.param_views(m)):
                g.zero_() if q is None else torch.mul(q, b, out=g)
            w.add_(flat_grad, alpha=-lr)
            return False
        for (lo, hi, idx), grad in zip(p.parts, grads):
            if grad is None:
                g_k[lo:hi].zero_()
            else:
                torch.index_select(grad.reshape(-1), 0, idx, out=g_k[lo:hi])
        for q in tr.params:
            q.grad = None
        w_k.add_(g_k.mul_(m_k), alpha=-lr)
        now = _pre_gate(w_k, p.theta_k, p.fmask_k)
        if not torch.equal(now, pre_k):  # a weight fell under its threshold: bias gates may close
            pre_k = now
            m_k = _dense(w, kept, now, layers)[kept] if layers else now
        with torch.no_grad():
            tr.work.index_copy_(0, kept, torch.mul(w_k, m_k))
    w.index_copy_(0, kept, w_k)
    return True


def _positions(m: torch.Tensor) -> torch.Tensor:
    """Ascending positions of the non-zeros of ``m`` (on the CPU through NumPy: ~7 ms against ~13 ms for
    ``torch.nonzero`` on the LEAF CNN's 6.6 M entries here)."""
    if m.device.type != "cpu":
        return torch.nonzero(m).squeeze(1)
    return torch.from_numpy(np.flatnonzero(m.bool().numpy()))


def _pre_gate(w_k: torch.Tensor, theta_k: torch.Tensor, fmask_k: torch.Tensor | None) -> torch.Tensor:
    """``1[|w| ≥ θ] ⊙ fmask`` on the kept positions, as 0/1 floats (the mask before the bias gates)."""
    m = torch.ge(w_k.abs(), theta_k).to(w_k.dtype)
    return m if fmask_k is None else m.mul_(fmask_k)
