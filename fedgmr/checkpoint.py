"""Atomic, checksummed checkpoints: the whole simulation state in one file, replaced atomically.

A checkpoint belongs to one resolved config (its run id) and one version of the prepared data (the sha256
of its manifest, ``fedgmr.config.data_fingerprint``). A checkpoint of another config in the same directory
is refused rather than silently resumed; one written on other data, or one that is damaged (truncated,
empty, a flipped byte, not a checkpoint at all), is reported in one warning and the run starts over.

File layout: an 80-byte header ``FEDGMR-CKPT v2 <sha256 of the rest>\\n`` followed by a ``torch.save``
payload. The payload is read with ``torch.load(weights_only=True)``: tensors and plain Python data only,
so a crafted file cannot run code (a checksum alone would not stop that: anyone can compute one).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from fedgmr.config import ConfigError, data_fingerprint, run_id

log = logging.getLogger(__name__)
NAME = "state.pt"
_MAGIC = b"FEDGMR-CKPT v2 "
_HEADER_LEN = len(_MAGIC) + 64 + 1
_CHUNK = 8 * 2**20


class CorruptCheckpoint(Exception):
    """The file is not a complete checkpoint written by this module."""


def _payload_sha(f, start: int) -> str:
    f.seek(start)
    h = hashlib.sha256()
    while block := f.read(_CHUNK):
        h.update(block)
    return h.hexdigest()


def save(directory: Path, cfg: dict, state: dict) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{NAME}.tmp"
    blob = {"run_id": run_id(cfg), "data": data_fingerprint(cfg), "state": state}
    with open(tmp, "w+b") as f:
        f.write(b"\0" * _HEADER_LEN)  # placeholder: the checksum is known only after the payload
        torch.save(blob, f)
        digest = _payload_sha(f, _HEADER_LEN)
        f.seek(0)
        f.write(_MAGIC + digest.encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / NAME)  # atomic: a kill leaves the previous checkpoint intact


def _read(path: Path) -> dict:
    with open(path, "rb") as f:
        header = f.read(_HEADER_LEN)
        if len(header) < _HEADER_LEN or not header.startswith(_MAGIC) or header[-1:] != b"\n":
            raise CorruptCheckpoint("no checkpoint header (empty, truncated, or not written by fedgmr)")
        if _payload_sha(f, _HEADER_LEN) != header[len(_MAGIC) : -1].decode("ascii", "replace"):
            raise CorruptCheckpoint("checksum mismatch (truncated or altered)")
        f.seek(_HEADER_LEN)
        try:
            blob = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError for forbidden globals, RuntimeError for a bad archive
            raise CorruptCheckpoint(f"unreadable payload ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or not {"run_id", "state"} <= blob.keys():
        raise CorruptCheckpoint("payload is not a fedgmr checkpoint")
    return blob


def load(directory: Path, cfg: dict) -> dict | None:
    """The saved state of this config's run, or None when there is nothing (usable) to resume."""
    path = Path(directory) / NAME
    if not path.is_file():
        return None
    try:
        blob = _read(path)
    except (CorruptCheckpoint, OSError) as exc:
        log.warning("ignoring checkpoint %s: %s; starting over", path, exc)
        return None
    if blob.get("run_id") != run_id(cfg):
        raise ConfigError(
            f"{path}: checkpoint belongs to another config (run id {blob.get('run_id')}, "
            f"this config {run_id(cfg)}); remove it or use another --out"
        )
    data = data_fingerprint(cfg)
    if blob.get("data") != data:
        log.warning(
            "ignoring checkpoint %s: written on other prepared data (manifest sha256 %s, now %s); starting over",
            path,
            str(blob.get("data"))[:12],
            str(data)[:12],
        )
        return None
    return blob["state"]


def remove(directory: Path) -> None:
    """Drop the checkpoint of a finished run (and its directory when that is left empty)."""
    path = Path(directory) / NAME
    path.unlink(missing_ok=True)
    try:
        Path(directory).rmdir()
    except OSError:
        pass  # not empty, or already gone
