"""Bias gating of the released ``bp`` models (reference §4.4).

The authors' ``bp_*`` models (LEAF CNN, VGG-11, ResNet-18, the StackOverflow transformer) build their
prunable layers from ``Bias_DenseConv2d`` / ``Bias_DenseLinear``, whose forward multiplies the bias by
"this output unit has at least one active weight". A unit whose weights are all masked therefore emits
nothing and its bias receives no gradient; the bias value itself is kept (it is not a prunable weight, so
it is sent and uploaded in full, and weight decay and momentum still move it). At low density this is not
a corner case: at rho = 0.05 the StackOverflow transformer has hundreds of such units.

``released`` semantics reproduce it (switch ``bias_gating``); ``clean`` follows the paper's rule that
biases are never pruned (§4.1): every bias always emits and trains.

In the flat representation a gate is one bool per bias coordinate of a gated layer, derived from the
client's weight mask; the trainer multiplies those biases by their gate in the forward pass only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fedgmr.flat import FlatLayout, Segment, any_per_row, as_float


@dataclass(frozen=True)
class GatedLayer:
    """A prunable weight and the bias of the same layer (output units along dimension 0)."""

    weight: Segment
    bias: Segment


def gated_layers(layout: FlatLayout) -> list[GatedLayer]:
    """Prunable layers that have a bias: the layers the released ``Bias_*`` classes gate.

    Embeddings have no bias and plain (non-prunable) layers are not ``Bias_*`` layers, so they never
    appear here.
    """
    out = []
    for seg in layout.layers:
        if not seg.name.endswith(".weight"):
            continue
        bias = layout.by_name.get(seg.name[: -len("weight")] + "bias")
        if bias is not None and not bias.is_buffer and bias.numel == seg.shape[0]:
            out.append(GatedLayer(seg, bias))
    return out


def unit_gates(mask: torch.Tensor, layers: list[GatedLayer]) -> list[torch.Tensor]:
    """Per gated layer, a bool vector over its output units: True where the unit has an active weight."""
    return [any_per_row(mask[g.weight.start : g.weight.stop].view(g.weight.shape[0], -1)) for g in layers]


def gated_units(mask: torch.Tensor, layers: list[GatedLayer]) -> int:
    """How many output units the mask silences (for diagnostics and tests)."""
    return int(sum(int((~g).sum()) for g in unit_gates(mask, layers)))


def apply_gates(weights: torch.Tensor, gates: list[torch.Tensor], layers: list[GatedLayer]) -> torch.Tensor:
    """A copy of ``weights`` with the biases of silent units zeroed: what the gated forward computes with."""
    out = weights.clone()
    for g, layer in zip(gates, layers):
        out[layer.bias.start : layer.bias.stop].mul_(as_float(g, out.dtype))
    return out


def gate_biases_(m: torch.Tensor, kept: torch.Tensor, layers: list[tuple]) -> torch.Tensor:
    """``m`` with each gated bias multiplied by "its unit keeps a weight of ``kept``" (FIARSE's threshold
    masks, as 0/1 floats), in place, touching only the bias segments."""
    for w, b in layers:
        m[b.start : b.stop].mul_(any_per_row(kept[w.start : w.stop].view(w.shape[0], -1)).to(m.dtype))
    return m


def gate_biases_by_value_(m: torch.Tensor, layers: list[tuple]) -> torch.Tensor:
    """:func:`gate_biases_` for a 0/1 float ``m`` that is its own ``kept`` (a row's maximum is 1 exactly
    when it keeps a weight): no bool vector needed."""
    for w, b in layers:
        m[b.start : b.stop].mul_(m[w.start : w.stop].view(w.shape[0], -1).amax(1))
    return m
