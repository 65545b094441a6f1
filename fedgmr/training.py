"""Local training: K steps of masked SGD on the flat parameter vector (reference §4.4, §8.2).

One working model serves every client: its parameters are views into a flat vector (see
``fedgmr.flat``), ``Trainer.work`` or, for the length of one training, the client's own output buffer
(``fedgmr.flat.Binding``). A client step is a pure function of (start weights, mask, optimiser state,
batches): copy the start weights in, run K steps, and the result is where they ran. SGD with momentum
and weight decay is a few vector operations on the flat vectors, so there is no per-client optimiser
object.

Masking (reference §4.4):
- the forward pass uses w ⊙ m, so gradients of masked coordinates are zero;
- ``remask`` (clean semantics, and ImageNet as released) re-applies the mask after every step and
  zeroes the masked momentum, so masked coordinates stay exactly zero;
- without it (StackOverflow as released, B6) momentum and weight decay move masked coordinates and the
  upload carries small non-zero values there.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from fedgmr.flat import Binding, FlatLayout, as_float


def loss_fn(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "bce_onehot":  # reference §8.1 / B22
        onehot = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, onehot)
    # Language model: cross-entropy over all positions, padding included (B22).
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def lr_at(base: float, schedule: dict, round_: int) -> float:
    kind = schedule.get("kind", "constant")
    if kind == "constant":
        return base
    if kind == "step":
        return base * schedule["gamma"] ** (round_ // schedule["step"])
    if kind == "multistep":
        return base * schedule["gamma"] ** sum(round_ >= m for m in schedule["milestones"])
    raise ValueError(f"unknown lr schedule {kind!r}")


class Trainer:
    """Runs local SGD for any client on one shared working model."""

    def __init__(
        self,
        model: nn.Module,
        layout: FlatLayout,
        work: torch.Tensor,
        loss: str | Callable,
        momentum: float,
        weight_decay: float,
    ):
        self.model = model
        self.layout = layout
        self.work = work
        self.loss = loss if callable(loss) else partial(loss_fn, loss)
        self.momentum = momentum
        self.weight_decay = weight_decay
        # SGD never touches buffers (BN running stats): forward updates them in place. Their gradient
        # stays 0, so only weight decay needs to skip them.
        self.has_buffers = not bool(layout.trainable.all())
        self.trainable_f = layout.trainable.to(device=work.device, dtype=work.dtype)
        # Parameters (not buffers) in layout order, with their segments: SGD updates exactly these.
        by_name = dict(model.named_parameters())
        self.param_segments = [seg for seg in layout.segments if not seg.is_buffer]
        self.params = [by_name[seg.name] for seg in self.param_segments]
        self.by_name = by_name
        self.binding = Binding(model, layout)

    def param_views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter views of a flat vector (masks, momentum), matching ``self.params``."""
        return [flat[s.start : s.stop].view(s.shape) for s in self.param_segments]

    def train(
        self,
        start: torch.Tensor,
        mask: torch.Tensor | None,
        momentum_buf: torch.Tensor | None,
        batches,
        lr: float,
        remask: bool,
        seed: int,
        out: torch.Tensor | None = None,
        gates: list[tuple[str, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Run the local steps and return the resulting flat vector (a new tensor).

        Args:
            start: flat weights the client starts from; the mask is applied here (it may be unmasked).
            mask: bool flat mask (True = active), or None for a dense model.
            momentum_buf: the client's flat momentum buffer, updated in place, or None.
            batches: iterable of (inputs, targets).
            lr: learning rate pushed by the server.
            remask: keep masked coordinates (and their momentum) exactly zero after every step.
            seed: seeds dropout for this client's round, so runs are reproducible and resumable.
            out: optional flat tensor to write the result into (returned).
            gates: released bias gating (``fedgmr.bias_gating``): (bias parameter name, bool gate per
                output unit). A gated bias keeps its value but neither emits nor receives a gradient;
                weight decay and momentum still move it, as in the authors' ``Bias_*`` layers.
        """
        # Train in ``out`` itself where it can hold the model (the module is bound to it for the
        # training and back to ``work`` after): the same steps on the same values, one model-sized copy
        # fewer per training than training in ``work`` and copying the result out.
        w = out if out is not None and out is not self.work and Binding.fits(out, self.work) else self.work
        if w is self.work:
            return self._train(w, start, mask, momentum_buf, batches, lr, remask, seed, gates, out)
        self.binding.to(w)
        try:
            return self._train(w, start, mask, momentum_buf, batches, lr, remask, seed, gates, out)
        finally:
            self.binding.to(self.work)

    def _train(self, w, start, mask, momentum_buf, batches, lr, remask, seed, gates, out) -> torch.Tensor:
        """:meth:`train` with the module bound to ``w`` (``self.work`` or ``out``)."""
        fmask = None if mask is None else as_float(mask, w.dtype)
        if fmask is None:
            w.copy_(start)
        else:
            torch.mul(start, fmask, out=w)  # the server sends global values under the mask (§4.4)
        momentum = self.momentum if momentum_buf is not None else 0.0
        extra = bool(momentum or self.weight_decay)
        # Without re-masking, momentum and weight decay move masked coordinates (B6); the forward must
        # still see w ⊙ m, so their drifting values are set aside around forward/backward.
        drift = fmask is not None and not remask and extra
        keep_out = None if not drift else 1.0 - fmask
        # Where the step itself is masked: always when re-masking (masked weights, which start at 0,
        # and their momentum stay exactly 0), and for plain SGD, where it is the same as masking g.
        mask_step = fmask is not None and (remask or not extra)
        params = self.params
        masks = None if fmask is None else self.param_views(fmask)
        bufs = self.param_views(momentum_buf) if momentum else None
        gated = None
        if gates:
            gated = [(self.by_name[name], as_float(g, w.dtype)) for name, g in gates if not bool(g.all())]
        self.model.train()
        # Dropout draws from the default generator of the device. Seeding it directly (not
        # torch.manual_seed, which also queues lazy seeding of every accelerator backend) keeps the same
        # stream at a fraction of the cost: FjORD calls this once per local step.
        torch.default_generator.manual_seed(seed)
        if w.is_cuda:
            torch.cuda.manual_seed(seed)
        for x, y in batches:
            if drift:
                leak = w * keep_out
                w.mul_(fmask)
            if gated:
                with torch.no_grad():
                    held = [b.detach().clone() for b, _ in gated]
                    for b, g in gated:
                        b.mul_(g)
            # Fresh gradients each step (as torch.optim's zero_grad(set_to_none=True)): backward writes
            # them instead of accumulating into a zeroed buffer, and the update runs per tensor with
            # the foreach kernels torch.optim uses. Parameters stay views of the flat vector ``w``.
            for p in params:
                p.grad = None
            self.loss(self.model(x), y).backward()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            with torch.no_grad():
                if gated:  # the silent units' biases take their values back; their gradient is 0
                    for (b, g), v in zip(gated, held):
                        b.copy_(v)
                        if b.grad is not None:
                            b.grad.mul_(g)
                if drift:
                    w.add_(leak)
                    torch._foreach_mul_(grads, masks)  # d(w ⊙ m)/dw = m
                if self.weight_decay:
                    torch._foreach_add_(grads, params, alpha=self.weight_decay)
                step = grads
                if momentum:
                    torch._foreach_mul_(bufs, momentum)
                    torch._foreach_add_(bufs, grads)
                    step = bufs
                if mask_step and step is grads:
                    torch._foreach_addcmul_(params, grads, masks, value=-lr)  # one pass per tensor
                else:
                    if mask_step:
                        torch._foreach_mul_(step, masks)
                    torch._foreach_add_(params, step, alpha=-lr)
        for p in params:
            p.grad = None
        if out is w:
            return out
        if out is not None:
            return out.copy_(w)  # reuse the client's previous upload buffer: no 4-byte-per-weight allocation
        return w.clone()
