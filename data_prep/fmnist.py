"""Fashion-MNIST from IDX files: the offline stand-in for FEMNIST (same 1x28x28 shape, LEAF CNN).

Sources, in order: ``--source DIR`` holding the four IDX files (``.gz`` or not), else Debian's
``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``), else, with ``--download``,
torchvision's downloader. 60,000 train / 10,000 test, 10 classes, pixels as stored (no inversion, no
normalisation, like FEMNIST's ToTensor pipeline).

Natural groups: Fashion-MNIST has no writers, so consecutive blocks of ``--group-size`` samples (default
300, i.e. 200 train "writers") play that role; blocks are contiguous in index order like LEAF's writers.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, SourceMissing
from .images import pixel_spec, write_image_dataset
from .registry import Preparer

log = logging.getLogger(__name__)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
HOW = "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass --download"


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a uint8 array (magic 2049 labels / 2051 images)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, OSError, zlib.error) as exc:  # truncated or corrupt gzip (BadGzipFile is an OSError)
        raise DataError(f"{path} cannot be read ({type(exc).__name__}: {exc}); replace it ({HOW})") from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file; replace it ({HOW})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    n = int(np.prod(dims))
    if len(raw) - start != n:
        raise DataError(f"{path} is truncated ({len(raw) - start} of {n} bytes); replace it ({HOW})")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


def _find(root: Path, stem: str) -> Path | None:
    for cand in (root / f"{stem}.gz", root / stem, root / "raw" / f"{stem}.gz", root / "raw" / stem):
        if cand.is_file():
            return cand
    return None


def _source_dir(a: argparse.Namespace) -> Path:
    if a.source:
        return Path(a.source)
    if a.download:
        return Path(a.download_root)
    return DEBIAN_DIR


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--group-size", type=int, default=300, help="samples per pseudo-writer (natural splits)")
    p.add_argument("--download", action="store_true", help="fetch with torchvision when no local copy exists")
    p.add_argument(
        "--download-root", default="resources/raw/fashion-mnist", help="where --download stores files"
    )


def _check(a: argparse.Namespace) -> None:
    root = _source_dir(a)
    if a.download and not all(_find(root, s) for s in FILES.values()):
        from torchvision.datasets import FashionMNIST

        try:
            FashionMNIST(str(root), train=True, download=True)
        except Exception as exc:  # network errors come in many types; all mean the same thing here
            raise SourceMissing(
                FILES["train_x"], root, f"download failed ({type(exc).__name__}); {HOW}"
            ) from exc
        root_fm = root / "FashionMNIST"
        a.source = str(root_fm)
        root = root_fm
    for stem in FILES.values():
        if _find(root, stem) is None:
            raise SourceMissing(f"{stem}[.gz]", root, HOW)


def _build(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    root = _source_dir(a)
    arr = {k: read_idx(_find(root, stem)) for k, stem in FILES.items()}
    for split in ("train", "test"):
        if len(arr[f"{split}_x"]) != len(arr[f"{split}_y"]):
            raise DataError(f"{split} images and labels differ in length under {root}; replace the files")

    def group(n: int) -> np.ndarray:
        return (np.arange(n) // a.group_size).astype(np.int64)

    return write_image_dataset(
        out,
        dataset="fmnist",
        source=f"IDX files in {root}",
        source_arg=a.source,
        train_x=arr["train_x"][:, None],
        train_y=arr["train_y"],
        test_x=arr["test_x"][:, None],
        test_y=arr["test_y"],
        num_classes=10,
        shape=(1, 28, 28),
        pixel=pixel_spec(1, None, None, invert=False),
        params={"group_size": a.group_size, "groups": "contiguous blocks of group_size samples"},
        train_group=group(len(arr["train_y"])),
        test_group=group(len(arr["test_y"])),
        groups="writer",
    )


PREPARER = Preparer("fmnist", "Fashion-MNIST IDX files (offline FEMNIST stand-in)", _args, _check, _build)
