"""Evaluation: accuracy and loss of a flat weight vector on the test set or held-out validation data.

Image tasks: top-1 accuracy. Language modelling: top-5 next-token accuracy over non-pad targets, ``<unk>``
counted (reference §8.3, B23). Evaluation runs under ``torch.inference_mode`` in batches of
``evaluation.batch_size`` on the one working model (``fedgmr.flat``): loading a vector is one copy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from fedgmr.training import loss_fn


class Evaluator:
    """Evaluates weight vectors of one run's model on its data, counting the work done."""

    def __init__(self, model: nn.Module, work: torch.Tensor, data, batcher, batch_size: int, loss: str):
        self.model, self.work, self.data, self.batcher = model, work, data, batcher
        self.batch_size, self.loss = batch_size, loss
        self.device = work.device
        # Work actually done, for benchmarks: evaluation forward passes and samples.
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
    correct = total = 0
    loss_sum, loss_n = 0.0, 0
    for x, y in batches:
        out = model(x)
        loss_sum += float(loss_fn(loss, out, y)) * len(y)
        loss_n += len(y)
        if task == "image":
            correct += int((out.argmax(1) == y).sum())
            total += len(y)
        else:
            top5 = out.topk(5, dim=-1).indices
            hit = (top5 == y.unsqueeze(-1)).any(-1)
            valid = y != 0
            correct += int((hit & valid).sum())
            total += int(valid.sum())
    acc = correct / total if total else 0.0
    return acc, (loss_sum / loss_n if loss_n else math.nan)
