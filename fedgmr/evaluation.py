"""Evaluation: accuracy and loss of a flat weight vector on the test set or held-out validation data.

Image tasks: top-1 accuracy. Language modelling: top-5 next-token accuracy over non-pad targets, ``<unk>``
counted (reference §8.3, B23). Evaluation runs under ``torch.inference_mode`` in batches of
``evaluation.batch_size`` on the one working model (``fedgmr.flat``): loading a vector is one copy.

Several vectors on the same data (the server and buffer-average models of a tick, the client scores of
one iteration) go through :meth:`Evaluator.many`. With ``stacked=True`` (the run trains its clients
with the vmap backend, i.e. on a GPU, ``fedgmr.batched``) they are evaluated in one pass per batch:
``torch.func.vmap`` over the stacked vectors, at most ``max_group`` at a time. Results equal the
one-by-one evaluation up to reduction order (logits differ by float32 ulps; an accuracy moves only on
an exact near-tie of two logits; ``tests/fedgmr/test_evaluation_many.py``). On the CPU stacking does not
pay: two LEAF CNNs over a 500-image batch took 664 ms stacked against 543 ms one after the other on this
project's 2-core machine (the convolutions are compute-bound either way), so CPU runs evaluate one by one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from fedgmr.flat import FlatLayout
from fedgmr.training import loss_fn

log = logging.getLogger(__name__)


class Evaluator:
    """Evaluates weight vectors of one run's model on its data, counting the work done."""

    def __init__(
        self,
        model: nn.Module,
        work: torch.Tensor,
        data,
        batcher,
        batch_size: int,
        loss: str,
        layout: FlatLayout | None = None,
        stacked: bool = False,
        max_group: int = 16,
    ):
        self.model, self.work, self.data, self.batcher = model, work, data, batcher
        self.batch_size, self.loss = batch_size, loss
        self.device = work.device
        if stacked and layout is None:
            raise ValueError("stacked evaluation needs the model's flat layout")
        self.layout, self.stacked, self.max_group = layout, stacked, max(1, max_group)
        self.stacked_failed: str | None = None
        # Work actually done, for benchmarks: evaluation forward passes and samples (per model).
        self.passes = self.samples = 0

    def split(self, split: str, client: int | None = None):
        """(inputs, targets) of the test set, or the held-out validation data of one or all clients."""
        d = self.data
        if split == "test":
            return d.test_x, d.test_y
        idx = d.val[client] if client is not None else np.concatenate(d.val)
        idx = np.sort(idx)
        return d.train_x[idx], (None if d.train_y is None else d.train_y[idx])

    def batches(self, x: np.ndarray, y: np.ndarray | None):
        bs, d = self.batch_size, self.data
        for s in range(0, len(x), bs):
            if d.task == "image":
                yield (
                    self.batcher.images(x[s : s + bs]),
                    torch.from_numpy(np.asarray(y[s : s + bs], dtype=np.int64)).to(self.device),
                )
            else:
                tok = torch.from_numpy(np.asarray(x[s : s + bs], dtype=np.int64)).to(self.device)
                yield tok[:, :-1], tok[:, 1:]

    def __call__(self, weights: torch.Tensor, split: str = "test", client: int | None = None):
        """(accuracy, mean loss) of ``weights``; (nan, nan) when the split is empty."""
        x, y = self.split(split, client)
        if len(x) == 0:
            return math.nan, math.nan
        self.passes += 1
        self.samples += len(x)
        return evaluate(self.model, self.work, weights, self.batches(x, y), self.data.task, self.loss)

    @property
    def group_size(self) -> int:
        """How many vectors :meth:`many` evaluates in one pass (1 when evaluating one by one)."""
        return self.max_group if self.stacked and self.stacked_failed is None else 1

    def many(
        self, weights: Sequence[torch.Tensor], split: str = "test", clients: Sequence[int | None] | None = None
    ) -> list[tuple[float, float]]:
        """``[self(w, split, c) for w, c in zip(weights, clients)]``, stacked where the data is shared."""
        clients = list(clients) if clients is not None else [None] * len(weights)
        if len(clients) != len(weights):
            raise ValueError(f"{len(weights)} weight vectors but {len(clients)} clients")
        # Vectors evaluated on the same samples: the test set whatever the client, else one client's.
        groups: dict[int | None, list[int]] = {}
        for i, c in enumerate(clients):
            groups.setdefault(None if split == "test" else c, []).append(i)
        out: list[tuple[float, float] | None] = [None] * len(weights)
        for idx in groups.values():
            if not self.stacked or self.stacked_failed is not None or len(idx) == 1:
                for i in idx:
                    out[i] = self(weights[i], split, clients[i])
                continue
            for s in range(0, len(idx), self.max_group):
                part = idx[s : s + self.max_group]
                for i, r in zip(part, self._stacked([weights[i] for i in part], split, clients[part[0]])):
                    out[i] = r
        return out  # type: ignore[return-value]

    def _stacked(self, weights: list[torch.Tensor], split: str, client: int | None) -> list[tuple[float, float]]:
        x, y = self.split(split, client)
        if len(x) == 0:
            return [(math.nan, math.nan)] * len(weights)
        try:
            res = evaluate_stacked(
                self.model, self.layout, torch.stack(weights), self.batches(x, y), self.data.task, self.loss
            )
        except (RuntimeError, NotImplementedError) as e:
            # A model vmap cannot handle: evaluate one by one from now on, and say why.
            self.stacked_failed = f"{type(e).__name__}: {e}"
            log.warning("stacked evaluation failed, evaluating one model at a time: %s", self.stacked_failed)
            return [self(w, split, client) for w in weights]
        self.passes += len(weights)
        self.samples += len(x) * len(weights)
        return res


class _Tally:
    """Running accuracy and loss sums of one model (the arithmetic of :func:`evaluate`)."""

    def __init__(self) -> None:
        self.correct = self.total = self.loss_n = 0
        self.loss_sum = 0.0

    def add(self, out: torch.Tensor, y: torch.Tensor, task: str, loss: str) -> None:
        self.loss_sum += float(loss_fn(loss, out, y)) * len(y)
        self.loss_n += len(y)
        if task == "image":
            self.correct += int((out.argmax(1) == y).sum())
            self.total += len(y)
        else:
            top5 = out.topk(5, dim=-1).indices
            hit = (top5 == y.unsqueeze(-1)).any(-1)
            valid = y != 0
            self.correct += int((hit & valid).sum())
            self.total += int(valid.sum())

    def result(self) -> tuple[float, float]:
        acc = self.correct / self.total if self.total else 0.0
        return acc, (self.loss_sum / self.loss_n if self.loss_n else math.nan)


@torch.inference_mode()
def evaluate(
    model: nn.Module, work: torch.Tensor, weights: torch.Tensor, batches, task: str, loss: str
) -> tuple[float, float]:
    """Accuracy and mean loss of ``weights`` over the evaluation batches.

    Image tasks: top-1 accuracy. Language modelling: top-5 next-token accuracy over non-pad targets,
    ``<unk>`` counted (reference §8.3, B23).
    """
    work.copy_(weights)
    model.eval()
    tally = _Tally()
    for x, y in batches:
        tally.add(model(x), y, task, loss)
    return tally.result()


@torch.inference_mode()
def evaluate_stacked(
    model: nn.Module, layout: FlatLayout, weights: torch.Tensor, batches, task: str, loss: str
) -> list[tuple[float, float]]:
    """:func:`evaluate` of each row of ``weights`` ``[C, N]``, one vmapped forward per batch for all C.

    The model's own parameters and buffers are not touched: each row supplies them (BatchNorm in eval
    mode reads its running statistics from the row).
    """
    model.eval()
    segments = layout.segments

    def forward(flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        state = {s.name: flat[s.start : s.stop].view(s.shape) for s in segments}
        return functional_call(model, state, (x,))

    batched = vmap(forward, in_dims=(0, None))
    tallies = [_Tally() for _ in range(weights.shape[0])]
    for x, y in batches:
        outs = batched(weights, x)
        for t, out in zip(tallies, outs):
            t.add(out, y, task, loss)
    return [t.result() for t in tallies]
