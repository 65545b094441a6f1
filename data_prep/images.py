"""Shared helpers for image datasets: pixel conventions and writing an image dataset."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .manifest import write_prepared


def pixel_spec(channels: int, mean: list[float] | None, std: list[float] | None, invert: bool) -> dict:
    """Return the manifest ``pixel`` entry: x = u8/255, then 1-x if invert, then (x-mean)/std."""
    return {
        "invert": bool(invert),
        "mean": [float(m) for m in mean] if mean is not None else [0.0] * channels,
        "std": [float(s) for s in std] if std is not None else [1.0] * channels,
    }


def decode_image(data: bytes | dict, mode: str) -> np.ndarray:
    """Decode PNG/JPEG bytes (or a Hugging Face ``{"bytes": ...}`` dict) to a uint8 [C,H,W] array."""
    from PIL import Image

    if isinstance(data, dict):
        data = data.get("bytes")
    if not isinstance(data, (bytes, bytearray)):
        raise DataError(f"an image entry holds {type(data).__name__}, not encoded image bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            arr = np.asarray(img.convert(mode), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for truncated or foreign bytes
        raise DataError(f"an image could not be decoded ({type(exc).__name__}: {exc})") from exc
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def write_image_dataset(
    out: Path,
    *,
    dataset: str,
    source: str,
    source_arg: str | None,
    train_x: np.ndarray | None,
    train_y: np.ndarray,
    test_x: np.ndarray | None,
    test_y: np.ndarray,
    num_classes: int,
    shape: tuple[int, int, int],
    pixel: dict[str, Any],
    params: dict[str, Any],
    train_group: np.ndarray | None = None,
    test_group: np.ndarray | None = None,
    groups: str | None = None,
    extra_files: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Validate and write an image dataset (see :mod:`data_prep.manifest` for the layout).

    ``train_x``/``test_x`` may be None when they were already written into ``out`` as memory maps;
    ``extra_files`` are other files already in ``out`` (e.g. ``classes.txt``) to list with their sha256.
    """
    arrays: dict[str, np.ndarray] = {
        "train_y": np.asarray(train_y, dtype=np.int64),
        "test_y": np.asarray(test_y, dtype=np.int64),
    }
    prewritten: list[str] = list(extra_files)
    for name, x in (("train_x", train_x), ("test_x", test_x)):
        if x is None:
            prewritten.append(f"{name}.npy")
            continue
        x = np.asarray(x)
        if x.dtype != np.uint8 or x.shape[1:] != tuple(shape):
            raise ValueError(f"{name} must be uint8 [N,{shape}], got {x.dtype} {x.shape}")
        arrays[name] = x
    if train_group is not None:
        arrays["train_group"] = np.asarray(train_group, dtype=np.int64)
    if test_group is not None:
        arrays["test_group"] = np.asarray(test_group, dtype=np.int64)
    for y in (arrays["train_y"], arrays["test_y"]):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"labels outside 0..{num_classes - 1}")
    return write_prepared(
        out,
        dataset=dataset,
        task="image",
        source=source,
        source_arg=source_arg,
        arrays=arrays,
        params=params,
        prewritten=tuple(prewritten),
        extra={"num_classes": int(num_classes), "shape": list(shape), "pixel": pixel, "groups": groups},
    )
