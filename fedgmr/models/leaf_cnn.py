"""LEAF Conv2 for FEMNIST (reference §8.1; ``leaf.py`` / ``bp_leaf.py`` of the authors' code).

conv 5x5 1->32 pad 2 -> ReLU -> maxpool 2 -> conv 5x5 32->64 pad 2 -> ReLU -> maxpool 2
-> FC 3136->2048 -> ReLU -> FC 2048->62. Input 1x28x28; the feature map entering ``fc1`` is 64x7x7,
flattened channel-major (so channel c owns columns c*49 ... c*49+48 of ``fc1.weight``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fedgmr.models.widths import check_channels, scale_width

FULL_CHANNELS = (32, 64, 2048)
SPATIAL = 7 * 7  # positions per channel after two 2x2 pools of a 28x28 image


class LeafCNN(nn.Module):
    """The LEAF FEMNIST CNN.

    Attributes:
        prunable: prunable parameter names in layer order (3 with ``bp``, 4 with ``plain``; §4.1).
        channels: hidden widths ``(conv1, conv2, fc1)``.
        task: ``"image"``.
    """

    name = "leaf_cnn"
    task = "image"

    def __init__(
        self,
        num_classes: int = 62,
        width: float = 1.0,
        variant: str = "bp",
        channels: Sequence[int] | None = None,
    ):
        super().__init__()
        if variant not in ("bp", "plain"):
            raise ValueError(f"leaf_cnn variant must be 'bp' or 'plain', got {variant!r}")
        self.channels = (
            self.default_channels(width) if channels is None else check_channels(channels, 3, self.name)
        )
        c1, c2, hidden = self.channels
        self.variant = variant
        # Convs keep PyTorch's default initialisation, as in the released model.
        self.conv1 = nn.Conv2d(1, c1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5, padding=2)
        self.fc1 = nn.Linear(c2 * SPATIAL, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        # Both FC weights: Kaiming-uniform with fan_out (a = 0); biases keep the default fan-in bound.
        # The bp output layer is a plain nn.Linear re-initialised the same way.
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_uniform_(fc.weight, mode="fan_out")
        self.prunable = ["conv1.weight", "conv2.weight", "fc1.weight"]
        if variant == "plain":
            self.prunable.append("fc2.weight")

    @staticmethod
    def default_channels(width: float = 1.0) -> tuple[int, ...]:
        """Hidden widths of the full model at a width multiplier."""
        return tuple(scale_width(c, width) for c in FULL_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``[B, 1, 28, 28]`` to logits ``[B, num_classes]``."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)
