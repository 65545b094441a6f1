"""The engine's memory policy: freed model-sized buffers are kept for reuse instead of being unmapped.

A run allocates model-sized vectors all the time: every backward's gradients, every merge's accumulators
(26 MB each for the LEAF CNN). With glibc's defaults such blocks go back to the operating system when they
are freed (unmapped, or trimmed off the top of the heap), so the next one faults its pages in again: in
the engine benchmark's FedAsync rounds some 12,700 page faults per round, two 26 MB blocks' worth (measured
by ``tests/fedgmr/test_allocator.py``). Fixing glibc's mmap threshold at its 64-bit maximum (32 MiB) and
keeping up to 256 MiB free at the top of the heap lets freed blocks be reused: about none per round.
Vectors above 32 MiB (ResNet-18's flat vector) are still mapped; its per-parameter gradients are not.

Measured on the 2-core CPU machine (``python benchmarks/allocator.py``, FedAsync, 10 rounds on one
thread, three runs each way, alternating; ``benchmarks/results/allocator_cpu.csv``): 0.65-0.87 s of
system time against 0.95-1.08 s, 323-353 k page faults against 491-518 k, engine wall 6.65 / 7.05 / 8.76 s
against 7.09 / 7.31 / 7.38 s (within this machine's noise), peak memory 1,202-1,252 MiB against
1,190-1,215 MiB (freed blocks stay with the process).

Only glibc is affected; elsewhere nothing changes. ``FEDGMR_MALLOC=system`` keeps the C library's
defaults, and so does a ``GLIBC_TUNABLES`` or ``MALLOC_*_`` setting of malloc's own.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # the largest value glibc accepts on 64-bit systems
TRIM_THRESHOLD = 256 << 20

_applied: bool | None = None


def _user_chose() -> bool:
    """Whether the malloc settings were chosen outside us (environment)."""
    if os.environ.get("FEDGMR_MALLOC", "").lower() == "system":
        return True
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return True
    return any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ)


def keep_freed_buffers() -> bool:
    """Apply the policy once per process; True when it is in force (glibc, not overridden)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux") or _user_chose():
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl has no mallopt worth setting
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not _applied:
        log.debug("mallopt refused the engine's memory policy; keeping the C library's defaults")
    return _applied
