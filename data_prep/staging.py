"""Write an output directory atomically: build it in a temporary sibling and rename it at the end.

A failed or interrupted preparation then never leaves a half-written ``--out`` directory behind, which is
what the workflow relies on to decide whether a step has to run again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import DataError

log = logging.getLogger(__name__)

# What this package writes into a partition directory (a prepared dataset lists its files in manifest.json).
_PARTITION_FILES = {"partition.json", "partition.npz", "stats.csv", "stats.png"}
# A temporary folder older than this is stale even if its pid is alive again (pids are reused).
STALE_SECONDS = 24 * 3600


def _own_files(out: Path) -> set[str] | None:
    """The names this package wrote into ``out``, or None when ``out`` is not one of ours."""
    import json

    if (out / "manifest.json").is_file():
        try:
            files = json.loads((out / "manifest.json").read_text()).get("files", {})
        except (OSError, ValueError, AttributeError):
            return None
        # .verified.json: the loader's marker that the checksums matched once (data_prep.manifest).
        return {"manifest.json", ".verified.json", *files} if isinstance(files, dict) else None
    if (out / "partition.json").is_file():
        return set(_PARTITION_FILES)
    return None


def _foreign(out: Path) -> list[str]:
    """Entries of ``out`` this package did not write (everything, when it is not one of ours)."""
    own = _own_files(out) or set()
    return sorted(p.name for p in out.iterdir() if p.name not in own or not p.is_file())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(out: Path) -> list[Path]:
    """Remove temporary siblings of ``out`` left by a killed run: dead owner pid, or older than a day."""
    removed = []
    if not out.parent.is_dir():
        return removed
    for kind in ("tmp", "old"):
        for p in out.parent.glob(f".{out.name}.{kind}-*"):
            m = re.fullmatch(rf"\.{re.escape(out.name)}\.{kind}-(\d+)(-.*)?", p.name)
            if not m or not p.is_dir():
                continue
            try:
                old = time.time() - p.stat().st_mtime > STALE_SECONDS
            except OSError:
                continue
            if old or not _pid_alive(int(m.group(1))):
                shutil.rmtree(p, ignore_errors=True)
                log.warning("removed %s, left by an interrupted run", p)
                removed.append(p)
    return removed


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``out``; on success rename it to ``out``.

    An existing ``out`` is replaced only when it is empty or holds nothing but the files this package
    wrote there (the files its ``manifest.json`` lists, or a partition's files): never a user's file.

    Args:
        out: Final output directory.

    Yields:
        The temporary directory to write into.

    Raises:
        DataError: If ``out`` is a file, or holds anything this package did not write.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"refusing to write {out}: it exists and is not a directory")
    if out.exists():
        foreign = _foreign(out)
        if foreign:
            raise DataError(
                f"refusing to replace {out}: it holds {foreign[0]!r}"
                f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}, which data_prep did not "
                "write; choose another --out or empty it"
            )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {out.parent} ({exc.strerror or type(exc).__name__})") from None
    clean_stale(out)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise DataError(f"cannot write next to {out} ({exc.strerror or type(exc).__name__})") from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)  # holds only files this package wrote (checked above)
        log.info("replaced %s", out)
    else:
        tmp.rename(out)
