"""Atomic checkpoints: the whole simulation state in one file, replaced atomically.

A checkpoint belongs to one resolved config (its run id); a checkpoint of another config in the same
directory is refused rather than silently resumed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from fedgmr.config import ConfigError, run_id

log = logging.getLogger(__name__)
NAME = "state.pt"


def save(directory: Path, cfg: dict, state: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{NAME}.tmp"
    torch.save({"run_id": run_id(cfg), "state": state}, tmp)
    os.replace(tmp, directory / NAME)  # atomic: a kill leaves the previous checkpoint intact


def load(directory: Path, cfg: dict) -> dict | None:
    path = Path(directory) / NAME
    if not path.is_file():
        return None
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if blob.get("run_id") != run_id(cfg):
        raise ConfigError(
            f"{path}: checkpoint belongs to another config (run id {blob.get('run_id')}, "
            f"this config {run_id(cfg)}); remove it or use another --out"
        )
    return blob["state"]


def remove(directory: Path) -> None:
    """Drop the checkpoint of a finished run (and its directory when that is left empty)."""
    path = Path(directory) / NAME
    path.unlink(missing_ok=True)
    try:
        Path(directory).rmdir()
    except OSError:
        pass  # not empty, or already gone
