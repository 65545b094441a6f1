"""Random streams by purpose: every stream of a run is derived from (run seed, purpose, ...).

One place names every purpose, so two streams never share a seed by accident and a new stream gets a new
number. The derivation (``numpy.random.SeedSequence``) makes streams independent whatever the numbers.
The virtual clock is the exception: it draws from ``RandomState(seed)`` as the released code does, so its
trace equals theirs (``fedgmr.network``).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Purpose(IntEnum):
    """What a random stream is for. The values are part of every result: never renumber."""

    MODEL_INIT = 1  # the initial global model
    INDEX_STREAM = 2  # a client's epoch-style shuffles of its shard (``fedgmr.data.IndexStream``)
    BATCH_AUGMENT = 4  # a client's batch augmentation in one round
    DROPOUT = 5  # a client's dropout in one round (and per local step for width-sliced methods)
    FJORD_WIDTHS = 6  # clean FjORD's sampled width per local step
    VALIDATION_SPLIT = 7  # the clean validation split held out of each client's data


def derive(seed: int, purpose: Purpose, *parts: int) -> int:
    """A 63-bit seed for one stream: (run seed, purpose, client, round, ...)."""
    words = [int(seed), int(purpose), *(int(p) for p in parts)]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint64)[0] >> 1)


def words(seed: int, purpose: Purpose, *parts: int) -> list[int]:
    """The seed words of a stream for ``numpy.random.default_rng`` (streams seeded with a word list)."""
    return [int(seed), int(purpose), *(int(p) for p in parts)]
