"""FEMNIST from LEAF json folders or the Hugging Face ``flwrlabs/femnist`` parquet copy.

LEAF (the paper's source, reference §8.3: ``preprocess.sh -s niid --sf 0.05 -k 0 -t sample``, 193 writers,
35,948 train / 4,090 test): ``--source`` holds ``train/`` and ``test/`` with ``*.json`` files
``{"users", "num_samples", "user_data": {user: {"x": [[784 floats]], "y": [...]}}}``. Files are read in the
order of the integer after ``all_data_`` in their names (as the reference does), writers in ``user_data``
order. LEAF pixels are floats in [0, 1] with 1 = white background; the reference feeds
``uint8(255 * (1 - x))`` (float32 arithmetic, truncation). We store exactly that inverted uint8 and set
``pixel.invert = false`` with identity normalisation, so the engine's x = u8/255 equals the reference input.

Hugging Face (``--source`` is a folder with parquet files, columns ``image`` (PNG bytes), ``writer_id``,
``character``, ``hsf_id``): read with pyarrow from the local files (nothing touches the network). That copy has no train/test split,
so each writer's samples (in file order) are split with a seeded permutation: the first
``max(1, int(0.9 * n))`` go to train, the rest to test (LEAF's ``-t sample`` rule). ``--writer-fraction``
keeps a seeded random subset of writers (0.05 is LEAF's ``--sf 0.05`` in spirit; LEAF's own sampling
cannot be replayed from this copy). PNG pixels p (white background = 255) are stored as 255 - p.
Writers are numbered 0..G-1 in source order in ``train_group`` / ``test_group`` (same numbering).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .errors import DataError, SourceMissing
from .images import decode_image, pixel_spec, write_image_dataset
from .registry import Preparer

log = logging.getLogger(__name__)

HOW_LEAF = (
    "run LEAF's data/femnist/preprocess.sh -s niid --sf 0.05 -k 0 -t sample and pass its data/ folder "
    "(with train/ and test/), or pass a folder with the flwrlabs/femnist parquet files"
)


def _json_files(folder: Path) -> list[Path]:
    files = [f for f in folder.iterdir() if f.suffix == ".json"]

    def key(f: Path) -> tuple[int, str]:
        m = re.match(r"all_data_(\d+)_", f.name)
        return (int(m.group(1)) if m else 1 << 30, f.name)

    return sorted(files, key=key)


def read_leaf_split(folder: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Read one LEAF split folder.

    Returns:
        Writer names in order, inverted uint8 images [N,1,28,28], labels [N], writer index per sample [N].
    """
    names: list[str] = []
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    gs: list[np.ndarray] = []
    for f in tqdm(_json_files(folder), desc=f"LEAF {folder.name}", unit="file", leave=False):
        try:
            blob = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{f} is not valid JSON ({exc}); re-run LEAF preprocessing") from exc
        for user, val in blob["user_data"].items():
            x = np.asarray(val["x"], dtype=np.float32).reshape(-1, 1, 28, 28)
            # Same arithmetic as the reference: float32 255*(1-x), truncated by the uint8 cast.
            xs.append((np.float32(255) * (np.float32(1) - x)).astype(np.uint8))
            ys.append(np.asarray(val["y"], dtype=np.int64))
            gs.append(np.full(len(x), len(names), dtype=np.int64))
            names.append(user)
    if not names:
        raise SourceMissing("*.json", folder, HOW_LEAF)
    return names, np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)


def _parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--writer-fraction",
        type=float,
        default=1.0,
        help="HF copy only: keep this seeded random fraction of writers (e.g. 0.05)",
    )
    p.add_argument("--train-fraction", type=float, default=0.9, help="HF copy only: per-writer train share")
    p.add_argument("--seed", type=int, default=0, help="HF copy only: seed of the writer subsample and split")


def _check(a: argparse.Namespace) -> None:
    if not a.source:
        raise SourceMissing("FEMNIST source folder", None, "pass --source; " + HOW_LEAF)
    if not 0.0 < a.writer_fraction <= 1.0:  # also refuses nan
        raise DataError(f"--writer-fraction {a.writer_fraction}: expected a value in (0, 1]")
    if not 0.0 < a.train_fraction <= 1.0:
        raise DataError(f"--train-fraction {a.train_fraction}: expected a value in (0, 1]")
    root = Path(a.source)
    if root.is_dir() and _parquet_files(root):
        return
    for split in ("train", "test"):
        if not (root / split).is_dir() or not any((root / split).glob("*.json")):
            raise SourceMissing(f"{split}/*.json", root / split, HOW_LEAF)


def _build_leaf(a: argparse.Namespace, root: Path, out: Path) -> dict[str, Any]:
    tr_names, tr_x, tr_y, tr_g = read_leaf_split(root / "train")
    te_names, te_x, te_y, te_g = read_leaf_split(root / "test")
    if tr_names != te_names:
        log.warning("train and test writer lists differ; test_group uses the test file order")
    return write_image_dataset(
        out,
        dataset="femnist",
        source=f"LEAF json in {root}",
        source_arg=a.source,
        train_x=tr_x,
        train_y=tr_y,
        test_x=te_x,
        test_y=te_y,
        num_classes=62,
        shape=(1, 28, 28),
        pixel=pixel_spec(1, None, None, invert=False),
        params={"format": "leaf", "stored": "uint8(255*(1-x)) (pre-inverted)", "writers": len(tr_names)},
        train_group=tr_g,
        test_group=te_g,
        groups="writer",
    )


def _read_hf_table(files: list[Path]):
    """The columns we need from the parquet files, in file order (pyarrow only: no hub client, no cache)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(str(f), columns=None))
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{f} is not a readable parquet file ({type(exc).__name__}); replace it") from exc
    for t, f in zip(tables, files):
        for col in ("image", "writer_id", "character"):
            if col not in t.column_names:
                raise DataError(f"{f} lacks column {col!r}; expected the flwrlabs/femnist parquet layout")
    return (
        [w for t in tables for w in t.column("writer_id").to_pylist()],
        np.asarray([c for t in tables for c in t.column("character").to_pylist()], dtype=np.int64),
        [im for t in tables for im in t.column("image").to_pylist()],
    )


def _build_hf(a: argparse.Namespace, root: Path, out: Path) -> dict[str, Any]:
    files = _parquet_files(root)
    writers, labels, image_col = _read_hf_table(files)
    order: dict[str, list[int]] = {}
    for i, w in enumerate(writers):
        order.setdefault(w, []).append(i)
    names = list(order)
    rs = np.random.RandomState(a.seed)
    if a.writer_fraction < 1.0:
        keep = max(1, round(a.writer_fraction * len(names)))
        chosen = set(rs.choice(len(names), size=keep, replace=False).tolist())
        names = [w for j, w in enumerate(names) if j in chosen]
    tr_idx: list[int] = []
    te_idx: list[int] = []
    tr_g: list[int] = []
    te_g: list[int] = []
    for g, w in enumerate(names):
        idx = np.asarray(order[w])
        perm = idx[rs.permutation(len(idx))]
        n_tr = max(1, int(a.train_fraction * len(idx)))
        tr, te = np.sort(perm[:n_tr]), np.sort(perm[n_tr:])
        tr_idx += tr.tolist()
        te_idx += te.tolist()
        tr_g += [g] * len(tr)
        te_g += [g] * len(te)

    def images(idx: list[int], desc: str) -> np.ndarray:
        x = np.empty((len(idx), 1, 28, 28), dtype=np.uint8)
        for j, i in enumerate(tqdm(idx, desc=desc, unit="img", leave=False)):
            img = decode_image(image_col[int(i)], "L")
            if img.shape != (1, 28, 28):
                raise DataError(f"FEMNIST image {int(i)} has shape {img.shape[1:]}, expected 28x28")
            x[j] = 255 - img
        return x

    tr_x, te_x = images(tr_idx, "train images"), images(te_idx, "test images")
    return write_image_dataset(
        out,
        dataset="femnist",
        source=f"flwrlabs/femnist parquet in {root}",
        source_arg=a.source,
        train_x=tr_x,
        train_y=labels[tr_idx],
        test_x=te_x,
        test_y=labels[te_idx],
        num_classes=62,
        shape=(1, 28, 28),
        pixel=pixel_spec(1, None, None, invert=False),
        params={
            "format": "hf_parquet",
            "writer_fraction": a.writer_fraction,
            "train_fraction": a.train_fraction,
            "seed": a.seed,
            "writers": len(names),
            "stored": "255 - png (pre-inverted)",
        },
        train_group=np.asarray(tr_g),
        test_group=np.asarray(te_g),
        groups="writer",
    )


def _build(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    root = Path(a.source)
    return _build_hf(a, root, out) if _parquet_files(root) else _build_leaf(a, root, out)


PREPARER = Preparer(
    "femnist", "FEMNIST from LEAF json (paper) or flwrlabs/femnist parquet", _args, _check, _build
)
