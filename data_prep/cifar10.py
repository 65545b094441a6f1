"""CIFAR-10 from the torchvision folder (``cifar-10-batches-py``) or a Hugging Face parquet copy.

torchvision layout: ``--source`` is the folder that contains ``cifar-10-batches-py/`` (torchvision's
``root``) or that folder itself. The batches are read in torchvision's order (``data_batch_1..5``, then
``test_batch``) and checked against torchvision's md5 list (``--no-md5`` skips that, for test fixtures).
They are Python pickles: only prepare sources you trust. ``--download`` lets torchvision fetch them where the
network allows. Hugging Face layout: parquet files with columns ``img`` (PNG bytes) and ``label``, split by
``train``/``test`` in the file names. 50,000 / 10,000 images, normalisation (0.4914, 0.4822, 0.4465) /
(0.2023, 0.1994, 0.2010) (reference §8.3).
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .errors import DataError, SourceMissing
from .images import decode_image, pixel_spec, write_image_dataset
from .registry import Preparer

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]
HOW = (
    "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it, pass --download, "
    "or pass a folder with the Hugging Face cifar10 parquet files"
)


def _batch_dir(root: Path) -> Path:
    return (
        root
        if (root / "data_batch_1").exists() or root.name == "cifar-10-batches-py"
        else (root / "cifar-10-batches-py")
    )


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def read_batches(folder: Path, names: list[str], check_md5: bool) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR-10 python batches into uint8 [N,3,32,32] images and int64 labels."""
    expected: dict[str, str] = {}
    if check_md5:
        from torchvision.datasets import CIFAR10

        expected = dict(CIFAR10.train_list + CIFAR10.test_list)
    xs, ys = [], []
    for name in names:
        path = folder / name
        if check_md5 and _md5(path) != expected[name]:
            raise DataError(f"{path} fails torchvision's md5 check; re-download it ({HOW})")
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry["labels"] if "labels" in entry else entry["fine_labels"], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _parquet(root: Path, split: str) -> list[Path]:
    return sorted(f for f in root.rglob("*.parquet") if split in f.name)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-md5", action="store_true", help="skip torchvision's md5 check of the batches")
    p.add_argument("--download", action="store_true", help="let torchvision download into --source")


def _check(a: argparse.Namespace) -> None:
    if not a.source:
        raise SourceMissing("cifar-10-batches-py/", None, "pass --source; " + HOW)
    root = Path(a.source)
    if root.is_dir() and _parquet(root, "train") and _parquet(root, "test"):
        return
    if a.download:
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(str(root), train=True, download=True)
        except Exception as exc:  # any network failure means: source still missing
            raise SourceMissing(
                "cifar-10-batches-py/", root, f"download failed ({type(exc).__name__}); {HOW}"
            ) from exc
    folder = _batch_dir(root)
    for name in TRAIN_BATCHES + TEST_BATCHES:
        if not (folder / name).is_file():
            raise SourceMissing(name, folder, HOW)


def _read_parquet(files: list[Path], desc: str) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table([str(f) for f in files]) if len(files) > 1 else pq.read_table(str(files[0]))
    for col in ("img", "label"):
        if col not in table.column_names:
            raise DataError(f"{files[0]} lacks column {col!r}; expected the Hugging Face cifar10 layout")
    imgs = table.column("img").to_pylist()
    x = np.stack([decode_image(b, "RGB") for b in tqdm(imgs, desc=desc, unit="img", leave=False)])
    return x, np.asarray(table.column("label").to_pylist(), dtype=np.int64)


def _build(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    root = Path(a.source)
    if root.is_dir() and _parquet(root, "train"):
        tr_x, tr_y = _read_parquet(_parquet(root, "train"), "train")
        te_x, te_y = _read_parquet(_parquet(root, "test"), "test")
        fmt = "hf_parquet"
    else:
        folder = _batch_dir(root)
        tr_x, tr_y = read_batches(folder, TRAIN_BATCHES, not a.no_md5)
        te_x, te_y = read_batches(folder, TEST_BATCHES, not a.no_md5)
        fmt = "torchvision"
    return write_image_dataset(
        out,
        dataset="cifar10",
        source=f"{fmt} in {root}",
        source_arg=a.source,
        train_x=tr_x,
        train_y=tr_y,
        test_x=te_x,
        test_y=te_y,
        num_classes=10,
        shape=(3, 32, 32),
        pixel=pixel_spec(3, list(MEAN), list(STD), invert=False),
        params={"format": fmt},
    )


PREPARER = Preparer("cifar10", "CIFAR-10 from torchvision batches or HF parquet", _args, _check, _build)
