"""Client partitions: which training-sample indices each client holds (reference §2.3).

All split functions are pure: they take labels or groups and a seed and return ``list[np.ndarray]`` of int64
index arrays, client 0 first. ``flwr-datasets`` partitioners are not used because their semantics differ from
the paper's: its ``DirichletPartitioner`` shuffles, enforces a minimum partition size by redrawing and can
self-balance, while the released code cuts unshuffled class indices once and sorts shards by size; its
``IidPartitioner`` keeps the remainder (``array_split``) where the paper drops it; and its
``NaturalIdPartitioner`` gives one id per partition where the paper groups contiguous blocks of writers.

On disk a partition is ``partition.npz`` (``indices`` concatenated, ``offsets`` [N+1]), ``partition.json``
(scheme, parameters, sizes, checksums), ``stats.csv`` and ``stats.png``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .manifest import sha256_file

log = logging.getLogger(__name__)

SEMANTICS = ("released", "clean")


def dirichlet(
    labels: np.ndarray, num_clients: int, alpha: float, seed: int, semantics: str = "released"
) -> list[np.ndarray]:
    """Non-IID split with per-class proportions drawn from Dir(alpha * 1).

    ``released`` follows ``utils/functional.dirichlet_split_noniid``: one ``RandomState(seed).dirichlet``
    call draws a [K, N] proportion matrix class by class; each class's indices, in dataset order, are cut at
    ``floor(cumsum(p)[:-1] * n_k)``; client shards are concatenated over classes, then sorted by size
    ascending (stable) and handed to clients 0..N-1 in that order, so client 0 gets the smallest shard. There
    is deliberately no minimum size: the paper's numbers come from exactly these shards.

    ``clean`` draws the same proportions, shuffles each class before cutting and assigns the shards to
    clients in a random order, as the paper's text describes a Dirichlet split.

    Args:
        labels: Integer class label per training sample.
        num_clients: Number of clients N.
        alpha: Concentration (the paper uses 0.6).
        seed: Seed of the numpy ``RandomState`` (the reference seeds numpy's global RNG with 0).
        semantics: ``"released"`` or ``"clean"``.

    Returns:
        One int64 index array per client.
    """
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be one of {SEMANTICS}, got {semantics!r}")
    labels = np.asarray(labels)
    rs = np.random.RandomState(seed)
    n_classes = int(labels.max()) + 1
    props = rs.dirichlet([alpha] * num_clients, n_classes)
    shards: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for k in range(n_classes):
        idx = np.flatnonzero(labels == k)
        if semantics == "clean":
            idx = idx[rs.permutation(len(idx))]
        cuts = (np.cumsum(props[k])[:-1] * len(idx)).astype(int)
        for c, piece in enumerate(np.split(idx, cuts)):
            shards[c].append(piece)
    parts = [np.concatenate(s).astype(np.int64) for s in shards]
    if semantics == "released":
        order = np.argsort([len(p) for p in parts], kind="stable")
    else:
        order = rs.permutation(num_clients)
    return [parts[i] for i in order]


def _torch_perm(n: int, seed: int) -> np.ndarray:
    # torch.randperm with a fresh generator reproduces the reference's torch-seeded permutation.
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g).numpy().astype(np.int64)


def iid(n: int, num_clients: int, seed: int) -> list[np.ndarray]:
    """Equal random split: a torch ``randperm(n)`` cut into N slices of floor(n/N); the remainder is dropped."""
    perm = _torch_perm(n, seed)
    size = n // num_clients
    return [perm[i * size : (i + 1) * size] for i in range(num_clients)]


def stackoverflow_iid(n: int, num_clients: int, seed: int) -> list[np.ndarray]:
    """StackOverflow IID split: like :func:`iid` but the last slice takes the remainder."""
    perm = _torch_perm(n, seed)
    size = n // num_clients
    return [perm[i * size : (i + 1) * size if i < num_clients - 1 else n] for i in range(num_clients)]


def natural(groups: np.ndarray, num_clients: int) -> list[np.ndarray]:
    """Natural split: contiguous blocks of floor(G/N) groups per client, the last client takes the rest.

    With FEMNIST's 193 writers and N = 10 this gives 19 writers to clients 0..8 and 22 to client 9; with
    StackOverflow's 6,000 users, 600 each. Each client holds every sample of its groups, in index order.

    Args:
        groups: Group (writer/user) index per sample, 0..G-1 in source order.
        num_clients: Number of clients N (at most G).

    Returns:
        One int64 index array per client.
    """
    groups = np.asarray(groups)
    n_groups = int(groups.max()) + 1
    if n_groups < num_clients:
        raise ValueError(f"{n_groups} groups cannot be split over {num_clients} clients")
    per = n_groups // num_clients
    # Group g belongs to client min(g // per, N-1): contiguous blocks, the remainder goes to the last.
    owner = np.minimum(groups // per, num_clients - 1)
    return [np.flatnonzero(owner == c).astype(np.int64) for c in range(num_clients)]


def write_partition(
    parts: list[np.ndarray],
    out_dir: Path,
    meta: dict[str, Any],
    labels: np.ndarray | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Write ``partition.npz``, ``partition.json``, ``stats.csv`` and ``stats.png`` into ``out_dir``.

    Args:
        parts: Client index arrays.
        out_dir: Directory (created if needed).
        meta: Keys recorded in ``partition.json`` (dataset, scheme, alpha, seed, semantics,
            dataset_manifest_sha256); ``num_clients``, ``sizes`` and ``npz_sha256`` are added.
        labels: Training labels, for per-class columns in ``stats.csv`` (image data).
        num_classes: Number of classes for those columns.

    Returns:
        The ``partition.json`` content.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = [len(p) for p in parts]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    indices = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    npz = out_dir / "partition.npz"
    # np.savez stores a zip with timestamps; write the two arrays through a fixed-date zip for stable hashes.
    _save_npz_deterministic(npz, indices=indices, offsets=offsets)
    info = {
        **{
            k: meta.get(k)
            for k in ("dataset", "scheme", "alpha", "seed", "semantics", "dataset_manifest_sha256")
        },
        **{k: v for k, v in meta.items() if k not in {"sizes", "npz_sha256", "num_clients"}},
        "num_clients": len(parts),
        "sizes": sizes,
        "npz_sha256": sha256_file(npz),
    }
    (out_dir / "partition.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    _write_stats(parts, out_dir, labels, num_classes)
    return info


def _save_npz_deterministic(path: Path, **arrays: np.ndarray) -> None:
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.save(buf, arr)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def _write_stats(
    parts: list[np.ndarray], out_dir: Path, labels: np.ndarray | None, num_classes: int | None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    header = ["client", "samples"]
    rows: list[list[int]] = []
    counts = None
    if labels is not None:
        k = int(num_classes if num_classes is not None else np.max(labels) + 1)
        header += [f"class_{c}" for c in range(k)]
        counts = np.stack([np.bincount(np.asarray(labels)[p], minlength=k) for p in parts]) if parts else None
    for c, p in enumerate(parts):
        row = [c, len(p)]
        if counts is not None:
            row += [int(v) for v in counts[c]]
        rows.append(row)
    (out_dir / "stats.csv").write_text(
        ",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    )
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    x = np.arange(len(parts))
    if counts is not None:
        bottom = np.zeros(len(parts))
        for c in range(counts.shape[1]):
            ax.bar(x, counts[:, c], bottom=bottom, width=0.8)
            bottom += counts[:, c]
    else:
        ax.bar(x, [len(p) for p in parts], width=0.8)
    ax.set_xlabel("client")
    ax.set_ylabel("samples")
    ax.set_xticks(x)
    fig.tight_layout()
    fig.savefig(out_dir / "stats.png")
    plt.close(fig)


def read_partition(path: Path, data_dir: Path | None = None) -> list[np.ndarray]:
    """Read a partition directory written by :func:`write_partition`, verifying its checksum.

    Args:
        path: Partition directory.
        data_dir: If given, also check that the partition was computed on this prepared dataset
            (its ``manifest.json`` sha256 must equal the recorded ``dataset_manifest_sha256``).

    Raises:
        DataError: If a file is missing, ``partition.npz`` does not match ``partition.json``, or the
            partition belongs to another version of the dataset.
    """
    path = Path(path)
    jpath, npz = path / "partition.json", path / "partition.npz"
    for p in (jpath, npz):
        if not p.is_file():
            raise DataError(f"{p} is missing; rebuild with: python -m data_prep partition ... --out {path}")
    info = json.loads(jpath.read_text())
    if sha256_file(npz) != info.get("npz_sha256"):
        raise DataError(
            f"{npz} does not match the sha256 in partition.json; rebuild with: "
            f"python -m data_prep partition --data DATA_DIR --scheme {info.get('scheme')} --out {path}"
        )
    if data_dir is not None and info.get("dataset_manifest_sha256") != manifest_sha(data_dir):
        raise DataError(
            f"{jpath} was computed on a different version of {data_dir}; rebuild with: python -m data_prep "
            f"partition --data {data_dir} --scheme {info.get('scheme')} --out {path}"
        )
    with np.load(npz) as z:
        indices, offsets = z["indices"], z["offsets"]
    return [indices[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def manifest_sha(data_dir: Path) -> str:
    """sha256 of a prepared dataset's ``manifest.json`` (ties a partition to the exact data it indexes)."""
    return hashlib.sha256((Path(data_dir) / "manifest.json").read_bytes()).hexdigest()
