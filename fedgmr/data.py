"""Datasets as the engine sees them: arrays in memory (or memory-mapped), batches as index gathers.

``load_dataset`` turns a resolved config into a ``FedData``: the training arrays, the evaluation set,
one index array per client (the partition) and, for the clean GMR signal, a validation split held out
of each client's shard. Pixel conversion and augmentation run on whole batches (design §5).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedgmr.errors import ConfigError
from fedgmr.seeds import Purpose, words

log = logging.getLogger(__name__)


@dataclass
class FedData:
    task: str  # "image" | "lm"
    train_x: np.ndarray  # uint8 [N,C,H,W] or int32 tokens [N,L]
    train_y: np.ndarray | None
    test_x: np.ndarray
    test_y: np.ndarray | None
    num_classes: int | None
    vocab_size: int | None
    pixel: dict | None
    clients: list[np.ndarray]  # training indices per client (validation part removed)
    val: list[np.ndarray]  # held-out validation indices per client (empty unless needed)
    augment: str = "none"


def _load_source(cfg: dict):
    ds = cfg["dataset"]
    seed = cfg["seed"]
    from data_prep import synthetic

    if ds["name"] == "synthetic_image":
        return synthetic.make_image(
            n_train=ds["synthetic_train"],
            n_test=ds["synthetic_test"],
            num_classes=10,
            shape=(1, 28, 28),
            seed=seed,
        )
    if ds["name"] == "synthetic_text":
        return synthetic.make_text(
            n_train=ds["synthetic_train"],
            n_test_chunks=ds["synthetic_test"],
            vocab_size=64,
            seq_len=32,
            n_users=max(cfg["clients"]["num"], 20),
            seed=seed,
        )
    from data_prep import DataError, load_prepared

    root = Path(ds["root"])
    if not (root / "manifest.json").is_file():
        raise ConfigError(
            f"dataset.root: no prepared dataset at {root} (missing manifest.json; run "
            f"`python -m data_prep prepare {ds['name']} --out {root}`)"
        )
    try:
        return load_prepared(root)
    except DataError as exc:
        raise ConfigError(f"dataset.root: {exc}") from None


def _partition(cfg: dict, src) -> list[np.ndarray]:
    ds, n = cfg["dataset"], cfg["clients"]["num"]
    try:
        return _partition_indices(cfg, src, ds, n)
    except ValueError as exc:  # the partitioner's own checks (e.g. more clients than natural groups)
        raise ConfigError(f"dataset.partition: {exc}") from None


def _partition_indices(cfg: dict, src, ds: dict, n: int):
    from data_prep import partition as P

    if ds["partition_file"]:
        return P.read_partition(ds["partition_file"])
    if ds["partition"] == "iid":
        return P.iid(len(src.train_x), n, cfg["seed"])
    if ds["partition"] == "natural":
        if src.train_group is None:
            raise ConfigError(f"dataset.partition: {ds['name']!r} has no natural groups (writers/users)")
        return P.natural(src.train_group, n)
    labels = src.train_y
    if labels is None:  # language data: non-IID means the natural user split
        if src.train_group is None:
            raise ConfigError(f"dataset.partition: {ds['name']!r} has no labels or user groups for non-IID")
        return P.natural(src.train_group, n)
    # Released shards are cut in class order and sorted by size; clean ones are shuffled (§2.3).
    order = "released" if cfg["switches"]["sorted_shards"] else "clean"
    return P.dirichlet(labels, n, ds["alpha"], cfg["seed"], semantics=order)


def load_dataset(cfg: dict, profile_augment: str) -> FedData:
    src = _load_source(cfg)
    parts = [np.asarray(p, dtype=np.int64) for p in _partition(cfg, src)]
    # Clean GMR signal: a validation split held out of each client's own data (no test-set leakage).
    val: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in parts]
    if cfg["switches"]["gmr_signal"] == "validation":
        rng = np.random.default_rng(words(cfg["seed"], Purpose.VALIDATION_SPLIT))
        for i, p in enumerate(parts):
            k = int(round(len(p) * cfg["dataset"]["val_fraction"]))
            if 0 < k < len(p):
                perm = rng.permutation(len(p))
                val[i] = np.sort(p[perm[:k]])
                parts[i] = np.sort(p[perm[k:]])
    if any(len(p) == 0 for p in parts):
        empty = [i for i, p in enumerate(parts) if len(p) == 0]
        shown = ", ".join(map(str, empty[:5])) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise ConfigError(f"clients.num: {len(empty)} clients ({shown}) received no training data")
    test_x, test_y = src.test_x, src.test_y
    max_test = cfg["evaluation"]["max_test"]
    if max_test is not None and len(test_x) > max_test:
        # A fixed subset, the same for every method and seed, so curves stay comparable.
        keep = np.sort(np.random.default_rng(12345).permutation(len(test_x))[:max_test])
        test_x = np.asarray(test_x[keep])
        test_y = None if test_y is None else np.asarray(test_y[keep])
    return FedData(
        task=src.task,
        train_x=src.train_x,
        train_y=src.train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=src.num_classes,
        vocab_size=src.vocab_size,
        pixel=src.pixel,
        clients=parts,
        val=val,
        augment=profile_augment,
    )


class Batcher:
    """Turns index arrays into model-ready tensors on a device."""

    def __init__(self, data: FedData, device: torch.device):
        self.data = data
        self.device = device
        if data.task == "image":
            px = data.pixel or {}
            c = data.train_x.shape[1]
            self.invert = bool(px.get("invert", False))
            self.mean = torch.tensor(px.get("mean", [0.0] * c), device=device).view(1, -1, 1, 1)
            self.std = torch.tensor(px.get("std", [1.0] * c), device=device).view(1, -1, 1, 1)

    def images(self, x_u8: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(x_u8)).to(self.device).float().div_(255.0)
        if self.invert:
            x = 1.0 - x
        return (x - self.mean) / self.std

    def train_batch(self, idx: np.ndarray, gen: torch.Generator | None):
        d = self.data
        if d.task == "image":
            x = self.images(d.train_x[np.sort(idx)] if _is_memmap(d.train_x) else d.train_x[idx])
            y = d.train_y[np.sort(idx)] if _is_memmap(d.train_x) else d.train_y[idx]
            if d.augment != "none":
                x = augment(x, d.augment, gen)
            return x, torch.from_numpy(np.asarray(y, dtype=np.int64)).to(self.device)
        tok = torch.from_numpy(np.asarray(d.train_x[idx], dtype=np.int64)).to(self.device)
        # Pad per batch to the batch maximum (reference §8.3): drop all-pad trailing columns.
        used = int((tok != 0).any(0).nonzero().max().item()) + 1 if (tok != 0).any() else 2
        tok = tok[:, : max(used, 2)]
        return tok[:, :-1], tok[:, 1:]


def _is_memmap(a: np.ndarray) -> bool:
    return isinstance(a, np.memmap)


def augment(x: torch.Tensor, kind: str, gen: torch.Generator | None) -> torch.Tensor:
    """Batch-wise augmentation: flip + padded random crop (CIFAR) or random-resized crop + flip (ImageNet)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen, device="cpu") < 0.5
    x = torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)
    if kind == "cifar":
        pad = torch.nn.functional.pad(x, (4, 4, 4, 4))
        ox = torch.randint(0, 9, (n,), generator=gen)
        oy = torch.randint(0, 9, (n,), generator=gen)
        rows = (oy.view(-1, 1) + torch.arange(h)).to(x.device)
        cols = (ox.view(-1, 1) + torch.arange(w)).to(x.device)
        b = torch.arange(n, device=x.device).view(-1, 1, 1)
        return pad.permute(0, 2, 3, 1)[b, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)
    if kind == "imagenet":
        # RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3)) via affine grids, one per image.
        area = torch.empty(n).uniform_(0.08, 1.0, generator=gen)
        logr = torch.empty(n).uniform_(np.log(3 / 4), np.log(4 / 3), generator=gen)
        ratio = torch.exp(logr)
        sw = torch.sqrt(area * ratio).clamp(max=1.0)
        sh = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - sw)
        cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - sh)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sw, cx, sh, cy
        grid = torch.nn.functional.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode="bilinear", align_corners=False)
    return x


class IndexStream:
    """Epoch-style sampling without replacement per client, continuing across rounds (reference §2.4).

    The permutation of epoch e is a pure function of (seed, client, e), so the state is two integers
    and a resumed run draws exactly the same batches.
    """

    def __init__(self, indices: np.ndarray, seed: int, client: int):
        self.indices = indices
        self.seed = seed
        self.client = client
        self.epoch = 0
        self.cursor = 0
        self._perm = self._make(0)

    def _make(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(words(self.seed, Purpose.INDEX_STREAM, self.client, epoch))
        return self.indices[rng.permutation(len(self.indices))]

    def next(self, batch: int) -> np.ndarray:
        out = []
        need = batch
        while need > 0:
            take = self._perm[self.cursor : self.cursor + need]
            out.append(take)
            self.cursor += len(take)
            need -= len(take)
            if self.cursor >= len(self._perm):
                self.epoch += 1
                self.cursor = 0
                self._perm = self._make(self.epoch)
        return np.concatenate(out) if len(out) > 1 else out[0]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.cursor = s["epoch"], s["cursor"]
        self._perm = self._make(self.epoch)
