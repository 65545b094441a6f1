"""One ``fedgmr run`` per output directory: an exclusive, non-blocking ``flock`` on ``OUT/.fedgmr-run.lock``.

Two processes writing one ``--out`` would interleave checkpoints and result files. The second one is
refused at once (``RunLocked``), it does not wait. The lock file is removed when the holder releases it;
a process that dies holding it leaves the file, but the kernel drops the lock with the process, so the
next run simply takes it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".fedgmr-run.lock"


class RunLocked(Exception):
    """Another live process holds the lock of this output directory."""


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[Path]:
    """Hold the exclusive lock of ``out`` (which must exist) for the duration of the block.

    Raises:
        RunLocked: another process holds it.
    """
    path = Path(out) / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(f"{out} is in use by another `fedgmr run` (lock {path})") from None
        # The previous holder may have removed the file between our open and our flock: then we hold a
        # lock on an orphan and must take the lock on the file that is there now.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        # Remove while holding the lock; a process that opened it meanwhile sees the inode change and retries.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
