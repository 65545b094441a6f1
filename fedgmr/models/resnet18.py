"""ResNet-18 for ImageNet-100 at 168 px (reference §8.1; ``resnet.py`` / ``bp_resnet.py``).

torchvision topology: 7x7/2 stem conv, BN, ReLU, 3x3/2 max-pool, four stages of two BasicBlocks
(64, 128, 256, 512 channels), global average pool, fc. Downsample paths are 1x1 conv + norm and are
never pruned. ``norm="gn"`` swaps every BatchNorm for GroupNorm(4), as the released width-sliced
baselines do (reference §7.3, B21).

HeteroFL width scaler (reference §7.3): when ``model.scaler`` is set, training-mode activations are
divided by it after each block conv (before its norm) and before the fc layer; evaluation ignores it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fedgmr.models.widths import check_channels, scale_width

FULL_CHANNELS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2
GN_GROUPS = 4


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(GN_GROUPS, channels)


def _scale(x: torch.Tensor, scaler: float | None) -> torch.Tensor:
    return x if scaler is None else x / scaler


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (torchvision's BasicBlock)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm(norm, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = _norm(norm, out_ch)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), _norm(norm, out_ch)
            )

    def forward(self, x: torch.Tensor, scaler: float | None) -> torch.Tensor:
        out = torch.relu(self.bn1(_scale(self.conv1(x), scaler)))
        out = self.bn2(_scale(self.conv2(out), scaler))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 with BN (FedGMR) or GroupNorm(4) (width-sliced baselines).

    Attributes:
        prunable: stem conv, the 16 block convs, fc (18 layers; downsample convs excluded).
        channels: stage widths ``(c1, c2, c3, c4)``; the stem has ``c1`` channels.
        scaler: HeteroFL activation divisor used in training mode, or None.
        task: ``"image"``.
    """

    name = "resnet18"
    task = "image"

    def __init__(
        self,
        num_classes: int = 100,
        width: float = 1.0,
        variant: str = "bp",
        norm: str = "bn",
        channels: Sequence[int] | None = None,
    ):
        super().__init__()
        if variant not in ("bp", "plain"):
            raise ValueError(f"resnet18 variant must be 'bp' or 'plain', got {variant!r}")
        if norm not in ("bn", "gn"):
            raise ValueError(f"resnet18 norm must be 'bn' or 'gn', got {norm!r}")
        self.channels = (
            self.default_channels(width) if channels is None else check_channels(channels, 4, self.name)
        )
        if norm == "gn" and any(c % GN_GROUPS for c in self.channels):
            raise ValueError(f"GroupNorm({GN_GROUPS}) needs widths divisible by {GN_GROUPS}: {self.channels}")
        self.variant, self.norm = variant, norm
        self.scaler: float | None = None
        c0 = self.channels[0]
        self.conv1 = nn.Conv2d(3, c0, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = _norm(norm, c0)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages, in_ch = [], c0
        for i, out_ch in enumerate(self.channels):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(in_ch, out_ch, stride, norm)]
            blocks += [BasicBlock(out_ch, out_ch, 1, norm) for _ in range(BLOCKS_PER_STAGE - 1)]
            stages.append(nn.ModuleList(blocks))
            in_ch = out_ch
        # Named layer1..layer4 like torchvision so parameter names read the same.
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if variant == "bp":
            nn.init.kaiming_uniform_(self.fc.weight, a=1.5)
        self.prunable = ["conv1.weight"]
        for s in range(1, 5):
            for b in range(BLOCKS_PER_STAGE):
                self.prunable += [f"layer{s}.{b}.conv1.weight", f"layer{s}.{b}.conv2.weight"]
        self.prunable.append("fc.weight")

    @staticmethod
    def default_channels(width: float = 1.0) -> tuple[int, ...]:
        """Stage widths at a width multiplier (multiples of 4, so GroupNorm(4) always fits)."""
        return tuple(scale_width(c, width, multiple=GN_GROUPS) for c in FULL_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``[B, 3, H, W]`` (H = W = 168 in the paper) to logits ``[B, num_classes]``."""
        scaler = self.scaler if self.training else None
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x, scaler)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(_scale(x, scaler))
