"""FIARSE (Wu, Li, Zhang, Pan, Huang and Li, "FIARSE: Model-Heterogeneous Federated Learning via
Importance-Aware Submodel Extraction", NeurIPS 2024) inside the FedGMR simulator (reference §1.6, §4.3,
§7.6, B3).

A client's sub-model is the set of weights whose magnitude reaches a threshold θ; the forward pass uses
``w ⊙ 1[|w| ≥ θ]``. The FIARSE paper differentiates the threshold mask with the surrogate
``d mask / d|w| = 2θ / (|w| + θ)²`` on kept weights (:class:`ThresholdMask`, the authors' ``Bern``), so a
kept weight's gradient is ``g · (1 + |w| · 2θ / (|w| + θ)²)``. Masks are rebuilt from the current global
|w| every round. Synchronous, sequential sends (no IMS), MA.

* ``clean`` (the paper): per-client model-wise top-k: client i keeps the ``floor(rho_i N)`` prunable weights
  of largest |w| (θ_i = the smallest kept magnitude) and trains with the surrogate gradient; the server is
  evaluated as the full model.
* ``released`` (B3): nested masks from the per-layer 2 % floor plus a global |w| fill (no layer coefficients);
  in the threshold layers (every prunable layer of the LEAF CNN and ResNet, the FC layers of VGG, none of the
  transformer) every client *and the server evaluation* use the shared floor magnitude θ_l, so about 2 % of
  each such layer computes whatever the nominal density; models dispatched at an evaluation tick use the
  ≈0.04 % threshold (the floor taken inside the previous floor); the surrogate gradient never runs (plain
  masked gradient). The round-0 models are dense (B12, ``switches.dense_round0``); the server's thresholds
  are still 0 at the first evaluation (dense) and at the first dispatch (no tick jump for round 0). On bp
  models the biases of units left without a kept weight are gated by the threshold mask (§4.4, switch
  ``bias_gating``), in local training and in the server evaluation.
  Approximations: thresholds are recomputed from the weights the client received (exact for the 2 % floor),
  the tick jump and the server evaluation take the floor of the current weights instead of the threshold
  of the previous round's rebuild, and non-tick rebuilds rank candidates by the current |w| instead of the
  last tick's (the fill does not compute, see below).

  Why released FIARSE can stay at chance (issue 8, item 7). Only the ≈2 % floor of each threshold layer
  computes and receives a gradient, for every client whatever its ρ (weights of the fill are uploaded
  unchanged, so MA leaves them as they were: ρ only sets the bytes charged). The floor holds 0.5 weight
  per conv1 filter on average (2 % of 25 taps), so most conv1 channels are silent, and each deeper unit
  keeps 2 % of its fan-in. Few input-to-logit paths survive and the signal on them is small: at
  initialisation the logits vary across inputs 1-1.5 % as much as the dense model's (std 8.0e-3 vs
  0.55 at width 0.25, 1.1e-2 vs 1.04 at full width), so the model learns the label prior through the
  dense output layer and stays there. At the demo's scale (LEAF CNN at width 0.25 on Fashion-MNIST, 40
  rounds, interval 2) conv1 computes with 4 of 200 weights (3 of 8 channels at initialisation) and the
  accuracy is the share of one class in the test sample (8.4 %) from the third evaluation on, with the
  BCE loss flat at 0.33 (0.325 is the loss of predicting every class with probability 0.1); 400 rounds
  at the authors' interval 25 end at 8.4 % too.
  The authors' own modules do the same there: their ``bp_leaf`` ``Conv2`` with ``bern=True``,
  ``sub_control_fast``, their client's ``load_state_dict`` and SGD step and their server forward,
  driven through our loop on the same data and batches, give the same accuracy at every evaluation of
  the demo run and losses within 0.0005 of ours; on identical tensors a client update of ours equals
  theirs bit for bit. So this is the released rule at that scale, not a defect of the
  re-implementation; ``clean`` FIARSE (the paper's rule) learns on the same settings. Whether the
  released rule learns at full width was not measured here (the paper reports 78.77 on FEMNIST).

``fiarse_aux`` / ``fiarse_aux_gmr``: semi-asynchronous deadline, IMS accounting, staleness-weighted MA, and
for the latter GMR with per-client triggers (B8 fixed). As released the cross-method table is FEMNIST, where
`abgmr_fiarse` / `gmr_fiarse` run without threshold layers and with the layer coefficients (§1.6, then
algorithmically FedGMR w/o GMR and FedGMR): ``released`` does that on the LEAF CNN, and otherwise keeps the
threshold layers without the ratchet of B3 (masks still rebuilt every round). ``clean`` is the paper's FIARSE
on the +Aux machinery.
"""

from __future__ import annotations

import weakref
from functools import partial
from typing import TYPE_CHECKING

import torch

from fedgmr.aggregation import BY_VALUE, Coverage
from fedgmr.bias_gating import gate_biases_, gated_layers
from fedgmr.flat import as_float
from fedgmr.masks import NestedMasks
from fedgmr.methods import fiarse_kept
from fedgmr.methods.base import Method
from fedgmr.methods.registry import register
from fedgmr.methods.width_sliced import WidthSliced
from fedgmr.selection import kth_smallest

if TYPE_CHECKING:
    from fedgmr.simulation import Simulation

FLOOR = 0.02  # per-layer floor of the released mask search (§4.3 step 1)


class ThresholdMask(torch.autograd.Function):
    """``1[s >= θ]`` with the FIARSE surrogate gradient ``2θ / (s + θ)²`` on kept entries (0 elsewhere).

    The surrogate is the derivative of ``(s − θ) / (s + θ)``; non-finite values (s = θ = 0) count as 0.
    """

    @staticmethod
    def forward(ctx, scores: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scores, theta)
        return _kept(scores, theta)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        scores, theta = ctx.saved_tensors
        return _surrogate(grad_out, scores, theta), None


def _kept(scores: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return as_float(scores >= theta, scores.dtype)


def _surrogate(grad_out: torch.Tensor, scores: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """:class:`ThresholdMask`'s backward: ``grad_out ⊙ 2θ / (s + θ)²`` on kept entries, 0 elsewhere."""
    grad = torch.nan_to_num(2 * theta / (scores + theta) ** 2, nan=0.0, posinf=0.0, neginf=0.0)
    return grad_out * grad * _kept(scores, theta)


def gated(w: torch.Tensor, theta: torch.Tensor, surrogate: bool) -> torch.Tensor:
    """Effective weights ``w ⊙ 1[|w| ≥ θ]``; with ``surrogate`` the mask is differentiated (FIARSE)."""
    if surrogate:
        return w * ThresholdMask.apply(w.abs(), theta)
    return w * as_float(w.detach().abs() >= theta, w.dtype)


def threshold_layers(model_name: str, layout) -> list:
    """Prunable segments with a threshold forward as released (`bern=True`, §7.6)."""
    if model_name in ("leaf_cnn", "resnet18"):
        return list(layout.layers)
    if model_name == "vgg11":
        return [s for s in layout.layers if s.name.startswith("fc")]
    return []


def unit_gate_vector(kept: torch.Tensor, layers: list[tuple], dtype: torch.dtype) -> torch.Tensor:
    """Ones, except 0 on the bias of every output unit without a kept weight (what a gated forward
    multiplies the biases by; it also stops their gradient)."""
    return gate_biases_(torch.ones(kept.numel(), dtype=dtype, device=kept.device), kept, layers)


def floor_threshold(values: torch.Tensor, floor: float = FLOOR) -> torch.Tensor:
    """Magnitude at ascending position ``min(floor((1 - floor) n), n - 1)`` (the released floor, §4.3)."""
    n = values.numel()
    # The (k+1)-th smallest is the sorted array's element k: the same value as sorting, in linear time.
    return kth_smallest(values.abs(), min(int((1.0 - floor) * n), n - 1) + 1)


def topk_threshold(w: torch.Tensor, prunable: torch.Tensor, rho: float) -> torch.Tensor:
    """Model-wise top-k threshold: the ``max(1, floor(rho N))``-th largest |w| over prunable weights."""
    a = w[prunable].abs()
    k = max(1, min(a.numel(), int(rho * a.numel() + 1e-9)))
    return kth_smallest(a, a.numel() - k + 1)


class _Memo:
    """This run's derived state, all a pure function of the current global vector (so a resumed run
    rebuilds the same): the masks, the masked weights a density's clients receive, and the thresholds
    of those weights. Clients of one density share one of each instead of recomputing them (a
    threshold is a k-th-value selection over every prunable layer)."""

    def __init__(self) -> None:
        self.masks_for: torch.Tensor | None = None  # the global vector ``sim.masks`` were built from
        self.w: torch.Tensor | None = None  # the global vector ``starts`` and ``thetas`` derive from
        self.starts: dict[int, tuple] = {}  # id(mask) -> (ref(mask), masked weights)
        self.thetas: dict[int, tuple] = {}  # id(start) -> (ref(start), jump, thresholds)
        self.top_k: dict[float, torch.Tensor] = {}  # clean: density -> mask of ``w``
        # Released plain SGD: (start, theta, mask, gated) -> kept positions (fedgmr.methods.fiarse_kept);
        # (global vector, theta, None, gated) where every density keeps the same positions.
        self.plans: dict[tuple, tuple] = {}

    def follow(self, w: torch.Tensor) -> None:
        """Forget what was derived from an earlier global vector (it is never needed again but by
        clients whose download carried over, which recompute it)."""
        if self.w is not w:
            self.w, self.starts, self.thetas, self.top_k, self.plans = w, {}, {}, {}, {}

    def received_now(self, start: torch.Tensor, masks) -> bool:
        """Whether ``start`` is the current global vector or one of the masked copies clients receive
        now, with masks of the current rebuild ``masks``."""
        if self.w is None or self.masks_for is not self.w or masks is None:
            return False
        return start is self.w or any(hit[1] is start for hit in self.starts.values())

    def plan(self, start: torch.Tensor, theta: torch.Tensor, mask, layers: list, make):
        """The :class:`fedgmr.methods.fiarse_kept.Plan` of a training from ``start`` with ``theta`` and
        ``mask`` (and bias gates when ``layers``), ``make()`` once for all clients that share them."""
        objs = (start, theta, mask)
        key = (*(id(o) for o in objs), bool(layers))
        hit = self.plans.get(key)
        if hit is None or any(r() is not o for r, o in zip(hit[0], objs) if o is not None):
            hit = self.plans[key] = (tuple(None if o is None else weakref.ref(o) for o in objs), make())
        return hit[1]

    def theta(self, start: torch.Tensor, jump: bool, make) -> torch.Tensor:
        """The thresholds of ``start`` (with or without the tick ``jump``), ``make()`` once per start."""
        hit = self.thetas.get(id(start))
        if hit is None or hit[0]() is not start or hit[1] != jump:
            hit = self.thetas[id(start)] = (weakref.ref(start), jump, make())
        return hit[2]


class FIARSE(Method):
    # ---- semantics helpers ---------------------------------------------------------------------
    def released(self, sim: "Simulation") -> bool:
        return sim.switch("fiarse_threshold_layers")  # B3

    def femnist_aux(self, sim: "Simulation") -> bool:
        """Released FEMNIST `abgmr_`/`gmr_fiarse`: FedGMR's masks, no threshold layers (§1.6)."""
        return False

    def bias_gated(self, sim: "Simulation") -> list[tuple]:
        """Layers whose biases the released bp models gate by the layer's forward mask (§4.4, switch
        ``bias_gating``); empty otherwise. For FIARSE that forward mask is the threshold mask."""
        gate = sim.cfg["switches"].get("bias_gating") and sim.cfg["model"].get("variant") == "bp"
        return [(g.weight, g.bias) for g in gated_layers(sim.layout)] if gate else []

    @staticmethod
    def _thresholds_everywhere(sim: "Simulation") -> bool:
        """Whether every prunable layer is a threshold layer (the LEAF CNN and ResNet as released)."""
        return len(threshold_layers(sim.cfg["model"]["name"], sim.layout)) == len(sim.layout.layers)

    def _memo(self, sim: "Simulation") -> _Memo:
        return self.run_state(sim, _Memo)

    def _dense0(self, sim: "Simulation") -> bool:
        return bool(sim.switch("dense_round0")) and sim.net.round == 0

    # ---- masks ---------------------------------------------------------------------------------
    def rebuild_masks(self, sim: "Simulation") -> None:
        """Masks follow the current global weights (every round, lazily in :meth:`client_start`)."""
        self._masks(sim)

    def on_round(self, sim: "Simulation", round_: int, tick: bool) -> None:
        if not self._dense0(sim):
            self._masks(sim)

    def _masks(self, sim: "Simulation") -> None:
        """Released: nested floor + fill masks of the current global |w| into ``sim.masks`` (cached on the
        identity of ``sim.global_w``: a pure function of it, so a resumed run rebuilds the same)."""
        if not self.released(sim):
            return
        memo = self._memo(sim)
        if memo.masks_for is sim.global_w and sim.masks is not None:
            return
        if self.femnist_aux(sim):
            sim.rebuild_magnitude_masks(use_coefficients=True)
        else:
            sim.masks = NestedMasks.build(sim.global_w.abs(), sim.layout, None, floor=FLOOR)
        memo.masks_for = sim.global_w

    def client_mask(self, sim: "Simulation", density: float) -> torch.Tensor | None:
        if density >= 1.0:
            return None
        if self.released(sim):
            self._masks(sim)
            return sim.masks.mask(density)
        memo = self._memo(sim)
        memo.follow(sim.global_w)
        mask = memo.top_k.get(density)
        if mask is None:
            theta = topk_threshold(sim.global_w, sim.layout_prunable, density)
            mask = memo.top_k[density] = ~sim.layout_prunable | (sim.global_w.abs() >= theta)
        return mask

    def client_start(self, sim: "Simulation", client: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._dense0(sim):
            return sim.global_w, None  # B12: round 0 trains the dense initial model
        start, mask = super().client_start(sim, client)
        if mask is None:
            return start, mask
        # Thresholds read the masked weights; clients of one density get the same tensor.
        memo = self._memo(sim)
        memo.follow(sim.global_w)
        hit = memo.starts.get(id(mask)) if start is sim.global_w else None
        if hit is None or hit[0]() is not mask:
            hit = (weakref.ref(mask), start * mask)
            if start is sim.global_w:
                memo.starts[id(mask)] = hit
        return hit[1], mask

    # ---- thresholds ----------------------------------------------------------------------------
    def thresholds(
        self, sim: "Simulation", client: int, start: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Per-coordinate θ for this training (0 = no threshold), derived from the received weights."""
        if mask is None and not self.released(sim):
            return None  # clean, rho = 1: the full model
        if self.released(sim) and (self.femnist_aux(sim) or self._dense0(sim)):
            return None
        if not self.released(sim):
            return self._memo(sim).theta(start, False, lambda: self._min_kept(sim, start, mask))
        tau = sim.net.payload_round[client]
        # The tick jump needs a threshold in the server model when it is evaluated at tick tau: the
        # first one is set by the rebuild that follows the round-0 evaluation, so round 0's dispatch
        # takes the plain floor (the server's thresholds start at 0: all weights pass).
        jump = tau > 0 and tau % sim.cfg["schedule"]["interval"] == 0 and self.name == "fiarse"
        layers = threshold_layers(sim.cfg["model"]["name"], sim.layout)
        if not layers:
            return None
        memo = self._memo(sim)
        if memo.received_now(start, sim.masks):
            # The global vector under a mask of the current rebuild: the mask keeps each layer's 2 %
            # floor (every weight at or above θ_l) and only zeroes weights below θ_l, so the layer's
            # floor magnitude, and the floor inside it, are the global vector's own. One selection
            # per layer per round instead of one per density (test_fiarse_released.py checks).
            start = sim.global_w
        # Masks built from this very vector selected every layer's floor value already (the same k-th
        # smallest of the same |w|): take it instead of selecting it again.
        known = sim.masks.floors if memo.masks_for is start and sim.masks is not None else None
        return memo.theta(start, jump, lambda: self._floor_thresholds(start, layers, jump, known))

    @staticmethod
    def _min_kept(sim: "Simulation", start: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Clean θ: the smallest kept magnitude on every prunable coordinate (0 elsewhere)."""
        theta = torch.zeros_like(start)
        kept = mask & sim.layout_prunable
        if kept.any():
            theta[sim.layout_prunable] = start[kept].abs().min()
        return theta

    @staticmethod
    def _floor_thresholds(
        start: torch.Tensor, layers: list, jump: bool, known: dict[int, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Released per-layer θ of ``start``: its floor magnitude, or with the tick ``jump`` the floor
        taken inside the floor (0 outside the threshold layers). ``known``: floor magnitudes of ``start``
        already selected, by layer start (``NestedMasks.floors`` of masks built from ``start``)."""
        theta = torch.zeros_like(start)
        for seg in layers:
            v = start[seg.start : seg.stop]
            t = known.get(seg.start) if known else None
            if t is None:
                t = floor_threshold(v)
            if jump:
                t = floor_threshold(v[v.abs() >= t])
            theta[seg.start : seg.stop] = t
        return theta

    def eval_weights(self, sim: "Simulation", weights: torch.Tensor) -> torch.Tensor:
        """Released: the server evaluates through the shared floor thresholds too (B3), with the biases of
        units left without a weight gated (§4.4). Before the first rebuild the server's thresholds are
        still 0, so the first evaluation (after the dense round 0, B12) sees the dense model."""
        if not self.released(sim) or self.femnist_aux(sim) or sim.masks is None:
            return weights
        layers = threshold_layers(sim.cfg["model"]["name"], sim.layout)
        if not layers:
            return weights
        out = weights.clone()
        kept = torch.ones_like(out, dtype=torch.bool)
        for seg in layers:
            v = out[seg.start : seg.stop]
            kept[seg.start : seg.stop] = v.abs() >= floor_threshold(v)
            v.mul_(as_float(kept[seg.start : seg.stop], v.dtype))
        gated = [(w, b) for w, b in self.bias_gated(sim) if w in layers]
        if gated:
            gate_biases_(out, kept, gated)
        return out

    # ---- local training ------------------------------------------------------------------------
    def local_update(
        self, sim: "Simulation", client: int, start: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, Coverage | None]:
        theta = self.thresholds(sim, client, start, mask)
        if theta is None:
            upload = sim.train_locally(client, start, mask)
        else:
            upload = self.train_gated(sim, client, start, mask, theta, surrogate=not self.released(sim))
        if sim.switch("value_coverage"):
            return upload, BY_VALUE
        return upload, mask

    def train_gated(
        self,
        sim: "Simulation",
        client: int,
        start: torch.Tensor,
        mask: torch.Tensor | None,
        theta: torch.Tensor,
        surrogate: bool,
    ) -> torch.Tensor:
        """K local SGD steps whose forward uses ``w ⊙ 1[|w| ≥ θ]`` (same update rule as ``Trainer``)."""
        model, tr = sim.model, sim.trainer
        w = start.clone()
        remask = mask is not None and ((not sim.switch("value_coverage")) or sim.profile.remask_every_step)
        mom = sim.momentum[client]
        lr = sim.client_lr[client]
        gated_layers = self.bias_gated(sim)
        model.train()
        torch.manual_seed(WidthSliced.step_seed(sim, client))
        batches = WidthSliced.batches(sim, client)
        count = partial(sim.count_steps, 1.0)
        if fiarse_kept.applies(tr, mom, remask, surrogate):
            memo = self._memo(sim)
            # Every density's kept positions are the same when every prunable layer has a threshold and
            # the start is the global vector under a mask of the current rebuild: a weight passes its
            # layer's threshold only inside the layer's floor, which every mask keeps whole (the floor
            # and the threshold are the same selection on the same vector, or the threshold, at a tick,
            # the floor inside it), and every mask keeps the unthresholded, non-prunable rest.
            shared = self._thresholds_everywhere(sim) and memo.received_now(start, sim.masks)
            key_start, key_mask = (sim.global_w, None) if shared else (start, mask)
            plan = memo.plan(
                key_start,
                theta,
                key_mask,
                gated_layers,
                lambda: fiarse_kept.plan(tr, start, theta, mask, gated_layers),
            )
            if fiarse_kept.train_kept(tr, w, plan, gated_layers, batches, lr, count):
                return w  # plain SGD: only the first step's kept weights move (fedgmr.methods.fiarse_kept)
        sim.work.copy_(start)  # buffers (BN statistics) are updated in place by the forward
        fmask = None if mask is None else as_float(mask, w.dtype)
        trainable = tr.trainable_f
        flat_grad = torch.zeros_like(w)  # buffer coordinates stay 0
        # Work vectors for the steps' elementwise passes: a fresh model-sized temporary per pass costs
        # page faults that took longer than the pass itself (LEAF CNN, 2-core CPU: the clean surrogate
        # step spent ~40 ms in six of them).
        scratch = [torch.empty_like(w) for _ in range(5 if surrogate else 2)]
        two_theta = torch.mul(theta, 2) if surrogate else None
        for x, y in batches:
            count()
            if surrogate:
                gate = None
                if gated_layers:  # the forward mask of this step decides which biases emit (§4.4)
                    kept = w.abs() >= theta
                    if mask is not None:
                        kept &= mask
                    gate = unit_gate_vector(kept, gated_layers, w.dtype)
                grad = _surrogate_grad(tr, w, theta, fmask, gate, x, y, flat_grad, scratch, two_theta)
            else:
                # Released (no surrogate): the threshold mask is a constant of the step, so the forward's
                # weights are w ⊙ m with m = 1[|w| ≥ θ] ⊙ mask ⊙ bias gates and dL/dw = dL/d(w ⊙ m) ⊙ m.
                # Differentiating w.r.t. w ⊙ m (the model's own backward) and multiplying by m gives the
                # same numbers as autograd through the three products (all factors are exactly 0 or 1),
                # without a dozen passes over the flat vector per step.
                m = fiarse_kept.released_mask_(w, theta, fmask, gated_layers, scratch)  # 0/1 floats
                # m already holds the client mask: the multiply below would change nothing.
                grad = _grad_at(tr, w, m, x, y, flat_grad)
            # grad is this step's own work vector: the update's factors apply in place.
            step = grad.mul_(trainable) if tr.has_buffers else grad  # trainable is all ones without buffers
            if fmask is not None and surrogate:
                step.mul_(fmask)
            if tr.weight_decay:
                step.add_(torch.mul(w, tr.weight_decay, out=scratch[0]).mul_(trainable))
            if mom is not None and tr.momentum:
                mom.mul_(tr.momentum).add_(step)
                step = mom
            w.add_(step, alpha=-lr)
            if remask:
                w.mul_(fmask)
                if mom is not None:
                    mom.mul_(fmask)
        if not tr.has_buffers:
            return w
        out_w = sim.work.clone()  # the buffers as the forward passes left them
        keep = sim.layout.trainable.to(w.device)
        out_w[keep] = w[keep]
        return out_w


def _grad_at(
    tr, w: torch.Tensor, m: torch.Tensor | None, x, y, grad: torch.Tensor, plus_zero: bool = False
) -> torch.Tensor:
    """``m ⊙ dL/d(w ⊙ m)`` of one batch (= dL/dw for a 0/1 ``m``; ``m`` None: dL/dw), into ``grad``: the
    model's own forward and backward with its parameters (views of ``tr.work``) set to ``w ⊙ m``.
    Buffers (BatchNorm statistics) stay those of ``tr.work``. ``plus_zero`` (with ``m`` None) writes
    ``dL/dw + 0.0`` (a -0.0 becomes +0.0) in the same pass as the copy.

    Same numbers as autograd through the flat vector's views, without its per-parameter full-size
    gradient copies (the backward took ~4x the forward and backward of the model alone).
    """
    masks = [None] * len(tr.params) if m is None else tr.param_views(m)
    with torch.no_grad():
        for p, a, b in zip(tr.params, tr.param_views(w), masks):
            if b is None:
                p.copy_(a)
            else:
                torch.mul(a, b, out=p)
    for p in tr.params:
        p.grad = None
    tr.loss(tr.model(x), y).backward()
    with torch.no_grad():
        for g, p, b in zip(tr.param_views(grad), tr.params, masks):
            if p.grad is None:
                g.zero_()
            elif b is None:
                torch.add(p.grad, 0.0, out=g) if plus_zero else g.copy_(p.grad)
            else:
                torch.mul(p.grad, b, out=g)
            p.grad = None
    return grad


def _surrogate_grad(
    tr,
    w: torch.Tensor,
    theta: torch.Tensor,
    fmask,
    gate,
    x,
    y,
    flat: torch.Tensor,
    scratch: list,
    two_theta: torch.Tensor | None = None,
) -> torch.Tensor:
    """dL/dw for the forward ``w ⊙ ThresholdMask(|w|, θ) ⊙ fmask ⊙ gate`` (either factor may be None), the
    bits autograd gives through :func:`gated` and ``functional_call`` on views of the flat vector.

    Only dL/d(effective weights) needs the model: its own backward (parameters set to the effective
    weights, as :func:`_grad_at` does) writes it into ``flat`` (buffer coordinates stay 0). The rest is
    the chain rule written out with the very products autograd evaluates (``MulBackward``: grad times
    the other factor; ``AbsBackward``: grad times ``sgn``; :func:`_surrogate`), in place on five of the
    model-sized ``scratch`` vectors, so the same numbers come out without autograd's full-size
    zero-filled gradient per parameter view, which made a clean FIARSE step ~8x a plain one. Autograd
    sums those per-view gradients, so a -0.0 of a parameter's gradient reaches the flat vector as +0.0:
    adding 0.0 does the same. ``two_theta`` (``2 * theta``, the same for every step of a training) may
    be passed in to save a pass. Returns one of the scratch vectors.
    """
    s, on, eff, t, through = scratch[:5]
    torch.ge(torch.abs(w, out=s), theta, out=on)  # _kept(s, θ), written as 0/1 floats
    torch.mul(w, on, out=eff)
    for f in (fmask, gate):
        if f is not None:
            eff.mul_(f)
    # Every parameter is used by the forward, so with several each coordinate is a sum: + 0.0.
    g = _grad_at(tr, eff, None, x, y, flat, plus_zero=len(tr.params) > 1)
    for f in (gate, fmask):  # backward visits the products in reverse
        if f is not None:
            g.mul_(f)
    direct = torch.mul(g, on, out=eff)
    # _surrogate(g ⊙ w, s, θ) ⊙ sgn(w), the same operations in place.
    torch.mul(g, w, out=through)
    torch.add(s, theta, out=s).pow_(2)
    if two_theta is None:
        two_theta = torch.mul(theta, 2)
    torch.div(two_theta, s, out=t).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    through.mul_(t).mul_(on)
    # direct + through ⊙ sgn(w) in one pass: a product with -1, 0 or 1 is exact, so fused or not the sum
    # is rounded once.
    return direct.addcmul_(through, torch.sgn(w, out=t))


class FIARSEAux(FIARSE):
    def femnist_aux(self, sim: "Simulation") -> bool:
        return self.released(sim) and sim.cfg["model"]["name"] == "leaf_cnn"


register(
    FIARSE(
        "fiarse",
        "FIARSE: importance-aware threshold sub-models rebuilt every round; sync, no IMS",
        "FIARSE",
        sync=True,
        ims=False,
        merge="ma",
        recover=False,
        client_triggers=False,
        use_coefficients=False,
    )
)
register(
    FIARSEAux(
        "fiarse_aux",
        "FIARSE+Aux: async deadline, IMS, staleness-weighted MA, no GMR",
        "FIARSE+Aux",
        sync=False,
        ims=True,
        merge="ma",
        recover=False,
        client_triggers=False,
        use_coefficients=False,
    )
)
register(
    FIARSEAux(
        "fiarse_aux_gmr",
        "FIARSE+Aux+GMR: +Aux with GMR and per-client triggers",
        "FIARSE+Aux+GMR",
        sync=False,
        ims=True,
        merge="ma",
        recover=True,
        client_triggers=True,
        use_coefficients=False,
    )
)
