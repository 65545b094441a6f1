"""VGG-11 without batch norm for CIFAR-10 (reference §8.1; ``vgg.py`` / ``bp_vgg.py``).

Eight 3x3 convs (pad 1) with channels [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M], ReLU
after each, then FC 512->512 -> ReLU -> FC 512->512 -> ReLU -> FC 512->10. A 32x32 input leaves a
1x1 map after the five pools, so ``fc1`` sees exactly the last conv's channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fedgmr.models.widths import check_channels, scale_width

FULL_CHANNELS = (64, 128, 256, 256, 512, 512, 512, 512, 512, 512)  # 8 convs, then fc1, fc2
POOL_AFTER = (0, 1, 3, 5, 7)  # conv indices followed by a 2x2 max-pool


class VGG11(nn.Module):
    """VGG-11 (no BN).

    Attributes:
        prunable: 8 convs + 2 hidden FCs (``bp``, 10 layers) or also the output FC (``plain``, 11).
        channels: hidden widths, 8 convs then the two hidden FCs.
        task: ``"image"``.
    """

    name = "vgg11"
    task = "image"

    def __init__(
        self,
        num_classes: int = 10,
        width: float = 1.0,
        variant: str = "bp",
        channels: Sequence[int] | None = None,
    ):
        super().__init__()
        if variant not in ("bp", "plain"):
            raise ValueError(f"vgg11 variant must be 'bp' or 'plain', got {variant!r}")
        self.channels = (
            self.default_channels(width) if channels is None else check_channels(channels, 10, self.name)
        )
        self.variant = variant
        convs, in_ch = [], 3
        for out_ch in self.channels[:8]:
            convs.append(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1))  # PyTorch default init
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        f1, f2 = self.channels[8:]
        self.fc1 = nn.Linear(in_ch, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc3 = nn.Linear(f2, num_classes)
        # Hidden FCs: Kaiming-uniform a = 0 (fan_in). Output: a = 1.5, fan_in for bp, fan_out for plain.
        nn.init.kaiming_uniform_(self.fc1.weight, a=0)
        nn.init.kaiming_uniform_(self.fc2.weight, a=0)
        nn.init.kaiming_uniform_(self.fc3.weight, a=1.5, mode="fan_in" if variant == "bp" else "fan_out")
        self.prunable = [f"convs.{i}.weight" for i in range(8)] + ["fc1.weight", "fc2.weight"]
        if variant == "plain":
            self.prunable.append("fc3.weight")

    @staticmethod
    def default_channels(width: float = 1.0) -> tuple[int, ...]:
        """Hidden widths of the full model at a width multiplier."""
        return tuple(scale_width(c, width) for c in FULL_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``[B, 3, 32, 32]`` to logits ``[B, num_classes]``."""
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i in POOL_AFTER:
                x = F.max_pool2d(x, 2)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
