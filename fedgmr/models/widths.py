"""Hidden-width arithmetic shared by the model files: the small-scale ``width`` multiplier.

``width`` shrinks hidden layers for quick runs; inputs (image channels, vocabulary) and outputs
(classes, vocabulary) never change. Width-sliced sub-models (HeteroFL/FedRolex, reference §7.3)
do not use this: they pass explicit ``channels`` computed by :mod:`fedgmr.models.slicing`.
"""

from __future__ import annotations

from collections.abc import Sequence


def scale_width(channels: int, width: float, multiple: int = 1) -> int:
    """Scale one hidden width, rounded to a multiple (GroupNorm(4) and attention heads need one).

    Args:
        channels: the full-size width.
        width: multiplier (1.0 = paper size).
        multiple: the result is a positive multiple of this.

    Returns:
        ``max(multiple, multiple * round(channels * width / multiple))``.
    """
    if width <= 0:
        raise ValueError(f"width multiplier must be positive, got {width}")
    return max(multiple, multiple * round(channels * width / multiple))


def check_channels(channels: Sequence[int], expected: int, model: str) -> tuple[int, ...]:
    """Validate an explicit list of hidden widths and return it as a tuple."""
    out = tuple(int(c) for c in channels)
    if len(out) != expected or min(out) < 1:
        raise ValueError(f"{model} takes {expected} positive hidden widths, got {list(channels)}")
    return out
