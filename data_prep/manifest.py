"""The prepared-dataset contract: arrays plus ``manifest.json``, written and verified here.

Layout of a prepared dataset directory (the simulation engine loads it through :func:`load_prepared`):

* image task: ``train_x.npy`` uint8 [N,C,H,W], ``train_y.npy`` int64 [N], ``test_x.npy``, ``test_y.npy``,
  optional ``train_group.npy`` / ``test_group.npy`` int64 (writer index in source order).
* lm task: ``train_tokens.npy`` int32 [N, seq_len] right-padded with 0, ``train_group.npy`` int64 [N]
  (user index), ``test_tokens.npy`` int32 [M, chunk_len], ``vocab.txt`` (line index = token id).

``manifest.json`` records where the data came from, the counts, the sha256 of every file and the preparation
parameters, so that a changed or truncated file is refused at load time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Arrays at least this large are memory-mapped instead of read into memory (ImageNet-100 is ~11 GB).
_MMAP_BYTES = 256 * 2**20


@dataclass
class PreparedData:
    """A prepared dataset as the engine sees it.

    For ``task == "lm"``: ``train_x`` holds the padded token rows, ``test_x`` the validation chunks and
    ``train_y``/``test_y`` are None.
    """

    name: str
    task: str
    train_x: np.ndarray
    train_y: np.ndarray | None
    test_x: np.ndarray
    test_y: np.ndarray | None
    train_group: np.ndarray | None = None
    test_group: np.ndarray | None = None
    num_classes: int | None = None
    vocab_size: int | None = None
    shape: tuple[int, ...] | None = None
    pixel: dict[str, Any] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: Path, chunk: int = 4 * 2**20) -> str:
    """Return the hex sha256 of a file, read in chunks so large arrays need no memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def rebuild_hint(manifest: dict[str, Any], path: Path) -> str:
    """Return the command that rebuilds the dataset described by ``manifest`` into ``path``."""
    name = manifest.get("dataset", "DATASET")
    cmd = f"python -m data_prep prepare {name} --out {path}"
    src = manifest.get("source_arg")
    if src:
        cmd += f" --source {src}"
    return cmd


def write_prepared(
    out: Path,
    *,
    dataset: str,
    task: str,
    source: str,
    arrays: dict[str, np.ndarray],
    params: dict[str, Any],
    extra: dict[str, Any],
    prewritten: tuple[str, ...] = (),
    source_arg: str | None = None,
) -> dict[str, Any]:
    """Save arrays, hash every file and write ``manifest.json``.

    Args:
        out: Directory to write into (normally a staging directory).
        dataset: Dataset name as used on the command line.
        task: ``"image"`` or ``"lm"``.
        source: Human-readable description of where the data came from.
        arrays: Arrays to save as ``<name>.npy``.
        params: Preparation parameters (recorded verbatim).
        extra: Task-specific manifest keys (``num_classes``, ``shape``, ``pixel`` / ``vocab_size`` ...).
        prewritten: File names already written into ``out`` (e.g. memory-mapped arrays, ``vocab.txt``)
            that must be hashed too.
        source_arg: The ``--source`` value, kept for the rebuild hint.

    Returns:
        The manifest dictionary.
    """
    out = Path(out)
    for name, arr in arrays.items():
        np.save(out / f"{name}.npy", np.ascontiguousarray(arr))
    names = sorted({f"{n}.npy" for n in arrays} | set(prewritten))
    files = {n: sha256_file(out / n) for n in names}
    if task == "image":
        y_tr = np.load(out / "train_y.npy", mmap_mode="r")
        y_te = np.load(out / "test_y.npy", mmap_mode="r")
        counts = {"train": len(y_tr), "test": len(y_te)}
    else:
        counts = {
            "train": int(np.load(out / "train_tokens.npy", mmap_mode="r").shape[0]),
            "test": int(np.load(out / "test_tokens.npy", mmap_mode="r").shape[0]),
        }
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "task": task,
        "source": source,
        "source_arg": source_arg,
        "counts": counts,
        "files": files,
        "params": params,
        **extra,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("wrote %s: %s", dataset, counts)
    return manifest


def _load_array(path: Path) -> np.ndarray:
    mmap = "r" if path.stat().st_size >= _MMAP_BYTES else None
    return np.load(path, mmap_mode=mmap, allow_pickle=False)


# Verified once: after the checksums of a dataset matched, this marker records each file's digest, size
# and modification time. Later loads trust files whose size and mtime are unchanged instead of re-reading
# them (an ImageNet-100 run would otherwise hash ~11 GB before training). Any change to a file, or to the
# manifest's digests, invalidates the marker and the next load hashes again.
VERIFIED = ".verified.json"


def _stamp(fpath: Path) -> list[int]:
    st = fpath.stat()
    return [st.st_size, st.st_mtime_ns]


def _verified_before(path: Path, files: dict[str, str]) -> bool:
    try:
        marker = json.loads((path / VERIFIED).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or set(marker) != set(files):
        return False
    try:
        return all(marker[f] == [files[f], *_stamp(path / f)] for f in files)
    except OSError:
        return False


def _mark_verified(path: Path, files: dict[str, str]) -> None:
    try:
        marker = {f: [files[f], *_stamp(path / f)] for f in files}
        tmp = path / f".{VERIFIED}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(marker, sort_keys=True))
        os.replace(tmp, path / VERIFIED)
    except OSError:
        pass  # a read-only dataset is simply verified again next time


def load_prepared(path: str | Path, verify: bool = True) -> PreparedData:
    """Load a prepared dataset directory, verifying its manifest.

    Args:
        path: Directory holding ``manifest.json`` and the arrays.
        verify: Check the sha256 of every listed file (slow for ImageNet-100: it reads ~11 GB).

    Returns:
        The dataset; large arrays are read-only memory maps.

    Raises:
        DataError: If the manifest or a file is missing, or a checksum does not match; the message names the
            file and the command that rebuilds it.
    """
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise DataError(
            f"no prepared dataset at {path}: {MANIFEST} is missing; "
            f"build it with: python -m data_prep prepare DATASET --out {path}"
        )
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{mpath} is not valid JSON ({exc}); rebuild the dataset") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{mpath} has format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}; "
            f"rebuild with: {rebuild_hint(manifest, path)}"
        )
    files = manifest.get("files", {})
    for fname in files:
        fpath = path / fname
        if not fpath.is_file():
            raise DataError(f"{fpath} is missing; rebuild with: {rebuild_hint(manifest, path)}")
    if verify and not _verified_before(path, files):
        for fname, digest in files.items():
            fpath = path / fname
            if sha256_file(fpath) != digest:
                raise DataError(
                    f"{fpath} does not match the sha256 in {MANIFEST}; rebuild with: {rebuild_hint(manifest, path)}"
                )
        _mark_verified(path, files)

    def opt(name: str) -> np.ndarray | None:
        p = path / f"{name}.npy"
        return _load_array(p) if f"{name}.npy" in manifest["files"] else None

    task = manifest["task"]
    if task == "image":
        train_x, train_y = _load_array(path / "train_x.npy"), _load_array(path / "train_y.npy")
        test_x, test_y = _load_array(path / "test_x.npy"), _load_array(path / "test_y.npy")
    elif task == "lm":
        train_x, train_y = _load_array(path / "train_tokens.npy"), None
        test_x, test_y = _load_array(path / "test_tokens.npy"), None
    else:
        raise DataError(f"{mpath} has unknown task {task!r}; rebuild with: {rebuild_hint(manifest, path)}")
    shape = manifest.get("shape")
    return PreparedData(
        name=manifest["dataset"],
        task=task,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        train_group=opt("train_group"),
        test_group=opt("test_group"),
        num_classes=manifest.get("num_classes"),
        vocab_size=manifest.get("vocab_size"),
        shape=tuple(shape) if shape is not None else None,
        pixel=manifest.get("pixel"),
        manifest=manifest,
    )
