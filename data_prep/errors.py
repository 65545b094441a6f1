"""Errors raised by data preparation and loading.

The CLI turns every :class:`DataError` into one line on stderr and exit status 2, so messages must be a
single line that says what is wrong and what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A prepared dataset, a partition or a raw source is missing, incomplete or corrupt."""


class SourceMissing(DataError):
    """A raw source file or folder is missing.

    Args:
        what: Name of the missing file or folder (e.g. ``train-images-idx3-ubyte.gz``).
        where: Where it was expected.
        how: How to obtain it (one short sentence).
    """

    def __init__(self, what: str, where: Path | str | None, how: str) -> None:
        self.what = what
        self.where = str(where) if where is not None else None
        self.how = how
        place = f" (expected at {self.where})" if self.where else ""
        super().__init__(f"missing source file {what}{place}; {how}")
