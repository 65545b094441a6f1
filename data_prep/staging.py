"""Write an output directory atomically: build it in a temporary sibling and rename it at the end.

A failed or interrupted preparation then never leaves a half-written ``--out`` directory behind, which is
what the workflow relies on to decide whether a step has to run again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import DataError

log = logging.getLogger(__name__)

# Files that mark a directory as one of ours, so that replacing it cannot delete unrelated data.
_OWN_MARKERS = ("manifest.json", "partition.json")


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``out``; on success rename it to ``out``.

    An existing ``out`` is replaced only when it is empty or was written by this package.

    Args:
        out: Final output directory.

    Yields:
        The temporary directory to write into.

    Raises:
        DataError: If ``out`` exists and is neither empty nor one of ours.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not any((out / m).exists() for m in _OWN_MARKERS):
        raise DataError(f"refusing to replace {out}: it exists and holds no manifest.json/partition.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
        log.info("replaced %s", out)
    else:
        tmp.rename(out)
