"""data_prep: raw sources -> prepared datasets and client partitions.

Public API: :func:`load_prepared` and :class:`PreparedData` (the contract the engine loads),
:class:`DataError`, the generators in :mod:`data_prep.synthetic` and the split functions in
:mod:`data_prep.partition`. The command line is ``python -m data_prep``.
"""

from . import partition, synthetic
from .errors import DataError, SourceMissing
from .manifest import PreparedData, load_prepared

__all__ = ["DataError", "PreparedData", "SourceMissing", "load_prepared", "partition", "synthetic"]
