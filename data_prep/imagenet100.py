"""ImageNet-100 from an ILSVRC-2012 folder (Kaggle "ImageNet Object Localization" layout).

``--source`` holds ``LOC_synset_mapping.txt``, ``LOC_val_solution.csv`` and the images in
``ILSVRC/Data/CLS-LOC/{train,val}`` (or directly in ``train/`` and ``val/``). Classes are the first 100
wnids of the mapping (reference §8.3), or the wnids of ``--classes FILE`` (first token per line, e.g. the
CMC ImageNet-100 list); label = position in that list. Train images are taken class by class, file names
sorted (ImageFolder order); validation images are the rows of ``LOC_val_solution.csv`` whose first wnid is in
the set, sorted by ImageId. Every image is converted to RGB and resized to 168x168 ignoring the aspect ratio.
The reference used cv2's bilinear resize and then re-encoded JPEG into LMDB; we use PIL's bilinear resize
(which antialiases when shrinking) and store raw uint8, so pixels differ slightly from the reference's.
Arrays are written as memory maps (≈11 GB for the 129,395 train images) and memory-mapped at training time.
"""

from __future__ import annotations

import argparse
import csv
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .errors import DataError, SourceMissing
from .images import pixel_spec, write_image_dataset
from .registry import Preparer

log = logging.getLogger(__name__)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
EXPECTED = {"train": 129_395, "test": 5_000}  # with the default class list
HOW = (
    "download the ILSVRC-2012 'ImageNet Object Localization Challenge' data (Kaggle: imagenet-object-"
    "localization-challenge) and pass the folder that holds LOC_synset_mapping.txt"
)


def _image_dir(root: Path, split: str) -> Path:
    deep = root / "ILSVRC" / "Data" / "CLS-LOC" / split
    return deep if deep.is_dir() else root / split


def class_list(root: Path, classes_file: str | None, num_classes: int) -> list[str]:
    """Return the wnids in label order."""
    if classes_file:
        lines = Path(classes_file).read_text().split("\n")
        wnids = [ln.split()[0] for ln in lines if ln.strip()]
    else:
        lines = (root / "LOC_synset_mapping.txt").read_text().split("\n")
        wnids = [ln.split()[0] for ln in lines if ln.strip()][:num_classes]
    if len(set(wnids)) != len(wnids):
        raise DataError("the class list has duplicate wnids")
    return wnids


def list_images(root: Path, wnids: list[str]) -> tuple[list[Path], list[int], list[Path], list[int]]:
    """List train and val image paths with labels, in the documented order."""
    label = {w: i for i, w in enumerate(wnids)}
    tr_paths: list[Path] = []
    tr_y: list[int] = []
    train_dir = _image_dir(root, "train")
    for w in wnids:
        d = train_dir / w
        if not d.is_dir():
            raise SourceMissing(f"train/{w}/", d, HOW)
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
        tr_paths += files
        tr_y += [label[w]] * len(files)
    val_dir = _image_dir(root, "val")
    rows: list[tuple[str, int]] = []
    with open(root / "LOC_val_solution.csv", newline="") as f:
        for row in csv.DictReader(f):
            first = row["PredictionString"].split()[0]
            if first in label:
                rows.append((row["ImageId"], label[first]))
    rows.sort()
    va_paths = []
    for image_id, _ in rows:
        p = val_dir / f"{image_id}.JPEG"
        if not p.is_file():
            raise SourceMissing(p.name, val_dir, HOW)
        va_paths.append(p)
    return tr_paths, tr_y, va_paths, [y for _, y in rows]


def load_resized(path: Path, size: int = 168) -> np.ndarray:
    """Decode an image, convert to RGB and resize to size x size (aspect ratio ignored); uint8 [3,H,W]."""
    from PIL import Image

    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return arr.transpose(2, 0, 1)


def _fill(out_file: Path, paths: list[Path], size: int, workers: int, desc: str) -> None:
    arr = np.lib.format.open_memmap(out_file, mode="w+", dtype=np.uint8, shape=(len(paths), 3, size, size))
    sizes = [size] * len(paths)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            it = pool.map(load_resized, paths, sizes, chunksize=64)
            for i, img in enumerate(tqdm(it, total=len(paths), desc=desc, unit="img")):
                arr[i] = img
    else:
        for i, p in enumerate(tqdm(paths, desc=desc, unit="img")):
            arr[i] = load_resized(p, size)
    arr.flush()
    del arr


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--classes", default=None, help="file with one wnid per line (default: first 100 of mapping)"
    )
    p.add_argument("--num-classes", type=int, default=100)
    p.add_argument("--size", type=int, default=168)
    p.add_argument("--workers", type=int, default=1, help="decoding processes")


def _check(a: argparse.Namespace) -> None:
    if not a.source:
        raise SourceMissing("LOC_synset_mapping.txt", None, "pass --source; " + HOW)
    root = Path(a.source)
    for name in ("LOC_synset_mapping.txt", "LOC_val_solution.csv"):
        if not (root / name).is_file():
            raise SourceMissing(name, root, HOW)
    for split in ("train", "val"):
        if not _image_dir(root, split).is_dir():
            raise SourceMissing(f"ILSVRC/Data/CLS-LOC/{split}/", root, HOW)
    if a.classes and not Path(a.classes).is_file():
        raise SourceMissing(Path(a.classes).name, Path(a.classes).parent, "pass an existing --classes file")
    wnids = class_list(root, a.classes, a.num_classes)
    a._lists = list_images(root, wnids)  # validates every folder/file before the output is created
    a._wnids = wnids


def _build(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    tr_paths, tr_y, va_paths, va_y = a._lists
    _fill(out / "train_x.npy", tr_paths, a.size, a.workers, "train")
    _fill(out / "test_x.npy", va_paths, a.size, a.workers, "val")
    if not a.classes and a.num_classes == 100 and (len(tr_y), len(va_y)) != tuple(EXPECTED.values()):
        log.warning(
            "ImageNet-100 counts %d/%d differ from the paper's %d/%d",
            len(tr_y),
            len(va_y),
            *EXPECTED.values(),
        )
    (out / "classes.txt").write_text("".join(w + "\n" for w in a._wnids))
    manifest = write_image_dataset(
        out,
        dataset="imagenet100",
        source=f"ILSVRC-2012 folder {a.source}",
        source_arg=a.source,
        train_x=None,
        train_y=np.asarray(tr_y),
        test_x=None,
        test_y=np.asarray(va_y),
        num_classes=len(a._wnids),
        shape=(3, a.size, a.size),
        pixel=pixel_spec(3, list(MEAN), list(STD), invert=False),
        params={
            "classes": a.classes or f"first {a.num_classes} of LOC_synset_mapping.txt",
            "size": a.size,
            "resize": "PIL bilinear, aspect ratio ignored",
        },
        extra_files=("classes.txt",),
    )
    return manifest


PREPARER = Preparer("imagenet100", "ImageNet-100 (168x168) from an ILSVRC-2012 folder", _args, _check, _build)
