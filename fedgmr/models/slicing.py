"""Width slicing for the HeteroFL and FedRolex baselines (reference §7.3-7.4).

A client of density rho gets a *physically smaller* dense model: every hidden layer keeps
k(C, rho) of its C output channels and the input channels its predecessor kept. Data inputs
(image channels, vocabulary rows) and outputs (classes, vocabulary) are never sliced.

Which channels are kept:

* HeteroFL (``offset=0``): the front slice ``0 .. k-1``.
* FedRolex (``offset=r``): the rolling window ``(r + arange(k)) mod C`` in every sliced layer. The
  released code takes ``torch.roll(arange(C), r)[:k]``, i.e. the window ``(arange(k) - r) mod C``;
  pass ``offset=-r`` to reproduce that direction exactly (any integer offset is accepted).

Because the same rule applies to every layer of the same width C, layers joined by a residual
connection (ResNet stages, the transformer's model dimension) always keep the same channels.

How many are kept (``k``):

* ``leaf_cnn``, ``vgg11``: ``ceil(sqrt(rho) * C)``.
* ``resnet18``: ``4 * floor(ceil(sqrt(rho) * C) / 4)``, at least 4 (GroupNorm(4) needs multiples of
  4; the release floors at 1, which only differs below rho ~ 0.004).
* ``transformer_lm``: with D = d_model / heads, ``q = clip(round(sqrt(rho) * D), 1, D) / D`` and
  ``k = ceil(q * C)`` for the model dimension and the FFN alike.

A :data:`SliceSpec` maps every ``state_dict`` name of the FULL model to one index per dimension,
shaped like ``numpy.ix_`` so that ``full[name][spec[name]]`` is the sub-model tensor and
``dense[name][spec[name]] = sub`` scatters it back. Sub-models built by :func:`build_submodel` have
exactly the full model's tensor names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from fedgmr.models import MODELS, build_model
from fedgmr.models.leaf_cnn import SPATIAL as LEAF_SPATIAL
from fedgmr.models.transformer_lm import NUM_HEADS

Index = torch.Tensor | slice
SliceSpec = dict[str, tuple[Index, ...]]


@dataclass(frozen=True)
class Axis:
    """A sliced tensor dimension: it follows the channels of a hidden layer of full width ``size``.

    ``repeat > 1`` marks a flattened conv map feeding an FC layer: channel c owns the ``repeat``
    consecutive columns ``c * repeat ...`` (LEAF: 64 channels x 7 x 7).
    """

    size: int
    repeat: int = 1


TensorAxes = tuple[Axis | None, ...]  # None = dimension kept whole


# ---------------------------------------------------------------------------------------------
# How many channels a layer keeps
# ---------------------------------------------------------------------------------------------


def _check_rho(rho: float) -> None:
    if not 0.0 < rho <= 1.0:
        raise ValueError(f"density rho must be in (0, 1], got {rho}")


def transformer_rate(d_model: int, rho: float, num_heads: int = NUM_HEADS) -> float:
    """The transformer width factor q = clip(round(sqrt(rho) * D), 1, D) / D, D = d_model / heads."""
    _check_rho(rho)
    steps = d_model // num_heads
    return max(1, min(steps, round(rho**0.5 * steps))) / steps


def width_channels(
    model_name: str, full_channels: Sequence[int], rho: float, *, num_heads: int = NUM_HEADS
) -> tuple[int, ...]:
    """Hidden widths of the rho sub-model, given the full model's hidden widths (``model.channels``).

    Args:
        model_name: a registered model name.
        full_channels: the full model's ``channels`` tuple.
        rho: the client density, in (0, 1].
        num_heads: attention heads (transformer only).

    Returns:
        The sub-model's ``channels`` tuple (pass it to ``build_model(..., channels=...)``).
    """
    _check_rho(rho)
    # rho ** 0.5 (not math.sqrt) to reproduce the release's floating-point values exactly.
    scale = rho**0.5
    if model_name in ("leaf_cnn", "vgg11"):
        return tuple(max(1, math.ceil(scale * c)) for c in full_channels)
    if model_name == "resnet18":
        return tuple(min(c, max(4, 4 * (math.ceil(scale * c) // 4))) for c in full_channels)
    if model_name == "transformer_lm":
        q = transformer_rate(full_channels[0], rho, num_heads)
        return tuple(math.ceil(q * c) for c in full_channels)
    raise ValueError(f"no width-slicing rule for model {model_name!r}")


def kept_channels(size: int, keep: int, offset: int = 0, repeat: int = 1) -> torch.Tensor:
    """Indices kept along one dimension: ``(offset + arange(keep)) mod size``, expanded by ``repeat``."""
    idx = (offset + torch.arange(keep)) % size
    if repeat > 1:
        idx = (idx[:, None] * repeat + torch.arange(repeat)).reshape(-1)
    return idx


# ---------------------------------------------------------------------------------------------
# Which dimension of which tensor follows which layer (one function per model)
# ---------------------------------------------------------------------------------------------


def _affine(axes: dict[str, TensorAxes], name: str, out: Axis | None, inp: Axis | None, spatial: int) -> None:
    """A conv (``spatial`` = 2 kernel dims) or linear layer with optional bias."""
    axes[f"{name}.weight"] = (out, inp) + (None,) * spatial
    axes[f"{name}.bias"] = (out,)


def _norm(axes: dict[str, TensorAxes], name: str, ax: Axis) -> None:
    for t in ("weight", "bias", "running_mean", "running_var"):
        axes[f"{name}.{t}"] = (ax,)
    axes[f"{name}.num_batches_tracked"] = ()


def _leaf_axes(model: nn.Module) -> dict[str, TensorAxes]:
    c1, c2, hidden = (Axis(c) for c in model.channels)
    axes: dict[str, TensorAxes] = {}
    _affine(axes, "conv1", c1, None, 2)
    _affine(axes, "conv2", c2, c1, 2)
    _affine(axes, "fc1", hidden, Axis(c2.size, LEAF_SPATIAL), 0)
    _affine(axes, "fc2", None, hidden, 0)
    return axes


def _vgg_axes(model: nn.Module) -> dict[str, TensorAxes]:
    widths = [Axis(c) for c in model.channels]
    axes: dict[str, TensorAxes] = {}
    prev: Axis | None = None
    for i, ax in enumerate(widths[:8]):
        _affine(axes, f"convs.{i}", ax, prev, 2)
        prev = ax
    _affine(axes, "fc1", widths[8], prev, 0)
    _affine(axes, "fc2", widths[9], widths[8], 0)
    _affine(axes, "fc3", None, widths[9], 0)
    return axes


def _resnet_axes(model: nn.Module) -> dict[str, TensorAxes]:
    axes: dict[str, TensorAxes] = {}
    prev = Axis(model.channels[0])
    axes["conv1.weight"] = (prev, None, None, None)
    _norm(axes, "bn1", prev)
    for s, width in enumerate(model.channels, start=1):
        ax = Axis(width)
        for b, block in enumerate(getattr(model, f"layer{s}")):
            name = f"layer{s}.{b}"
            axes[f"{name}.conv1.weight"] = (ax, prev, None, None)
            _norm(axes, f"{name}.bn1", ax)
            axes[f"{name}.conv2.weight"] = (ax, ax, None, None)
            _norm(axes, f"{name}.bn2", ax)
            if block.downsample is not None:
                # The shortcut maps the block input onto the block output channels.
                axes[f"{name}.downsample.0.weight"] = (ax, prev, None, None)
                _norm(axes, f"{name}.downsample.1", ax)
            prev = ax
    _affine(axes, "fc", None, prev, 0)
    return axes


def _transformer_axes(model: nn.Module) -> dict[str, TensorAxes]:
    d, f = (Axis(c) for c in model.channels)
    axes: dict[str, TensorAxes] = {
        "pos_embedding.weight": (None, d),  # positions kept, embedding dimension sliced
        "tok_embedding.weight": (None, d),  # vocabulary kept
    }
    _norm(axes, "embed_norm", d)
    for i in range(len(model.layers)):
        for proj in ("q", "k", "v", "o"):
            _affine(axes, f"layers.{i}.{proj}", d, d, 0)
        _norm(axes, f"layers.{i}.norm1", d)
        _affine(axes, f"layers.{i}.ffn1", f, d, 0)
        _affine(axes, f"layers.{i}.ffn2", d, f, 0)
        _norm(axes, f"layers.{i}.norm2", d)
    _affine(axes, "decoder.linear1", d, d, 0)
    _norm(axes, "decoder.norm", d)
    _affine(axes, "decoder.linear2", None, d, 0)
    return axes


_AXES = {
    "leaf_cnn": _leaf_axes,
    "vgg11": _vgg_axes,
    "resnet18": _resnet_axes,
    "transformer_lm": _transformer_axes,
}


def tensor_axes(model: nn.Module) -> dict[str, TensorAxes]:
    """For every ``state_dict`` entry of ``model``, which hidden layer each dimension follows."""
    if model.name not in _AXES:
        raise ValueError(f"no width-slicing rule for model {model.name!r}")
    table = _AXES[model.name](model)
    state = model.state_dict()
    # Keep only names the model has (BN vs GN, biases); every tensor it has must be described.
    missing = sorted(set(state) - set(table))
    if missing:
        raise RuntimeError(f"slicing table of {model.name} misses {missing}")
    return {name: table[name] for name in state}


# ---------------------------------------------------------------------------------------------
# Index specs, sub-models, extraction and scatter
# ---------------------------------------------------------------------------------------------


def _open_mesh(per_dim: list[torch.Tensor | None]) -> tuple[Index, ...]:
    """Shape 1-D indices like ``numpy.ix_`` so that tensor[index] takes their outer product."""
    sliced = [i for i, t in enumerate(per_dim) if t is not None]
    # Torch moves advanced indices to the front unless they are adjacent; ours always are.
    if sliced and sliced != list(range(sliced[0], sliced[-1] + 1)):
        raise ValueError("sliced dimensions must be adjacent")
    out: list[Index] = []
    for i, t in enumerate(per_dim):
        if t is None:
            out.append(slice(None))
        else:
            shape = [1] * len(sliced)
            shape[sliced.index(i)] = -1
            out.append(t.view(shape))
    return tuple(out)


def slice_indices(model: nn.Module, rho: float, offset: int = 0) -> SliceSpec:
    """Indices of the FULL model's tensors that the rho sub-model keeps.

    Args:
        model: the full model (any width multiplier); only its structure is read.
        rho: the client density, in (0, 1].
        offset: 0 for HeteroFL; the FedRolex window start (e.g. the round index) otherwise.

    Returns:
        ``{name: index tuple}`` for every ``state_dict`` entry; ``full[name][index]`` has the shape of
        the sub-model's tensor. Sliced dimensions hold LongTensors (ix-shaped), the rest ``slice(None)``.
    """
    heads = getattr(model, "num_heads", NUM_HEADS)
    sub_channels = width_channels(model.name, model.channels, rho, num_heads=heads)
    keep = dict(zip(model.channels, sub_channels))
    cache: dict[Axis, torch.Tensor] = {}
    spec: SliceSpec = {}
    for name, axes in tensor_axes(model).items():
        per_dim: list[torch.Tensor | None] = []
        for ax in axes:
            if ax is None:
                per_dim.append(None)
                continue
            if ax not in cache:
                cache[ax] = kept_channels(ax.size, keep[ax.size], offset, ax.repeat)
            per_dim.append(cache[ax])
        spec[name] = _open_mesh(per_dim)
    return spec


def per_dim_indices(index: tuple[Index, ...]) -> list[torch.Tensor | None]:
    """The kept indices of each dimension as flat 1-D tensors (None = whole dimension)."""
    return [None if isinstance(i, slice) else i.reshape(-1) for i in index]


def build_submodel(name: str, rho: float, *, use_scaler: bool = False, **build_kwargs) -> nn.Module:
    """Build the physically smaller rho sub-model, with the full model's tensor names.

    Args:
        name: a registered model name.
        rho: the client density, in (0, 1].
        use_scaler: set the HeteroFL activation scaler (ResNet: sqrt(rho); transformer: its width
            factor q, as released). Only ResNet and the transformer have one (reference §7.3).
        **build_kwargs: options of :func:`fedgmr.models.build_model` describing the FULL model
            (``width`` or ``channels`` give its widths; the sub-model's are derived from them).

    Returns:
        A freshly initialised sub-model; load ``extract(full_state, spec)`` into it.
    """
    full_channels = build_kwargs.pop("channels", None)
    width = build_kwargs.pop("width", 1.0)
    if full_channels is None:
        full_channels = MODELS[name].default_channels(width)
    sub_channels = width_channels(name, full_channels, rho)
    model = build_model(name, channels=sub_channels, **build_kwargs)
    if use_scaler:
        if name == "resnet18":
            model.scaler = rho**0.5
        elif name == "transformer_lm":
            model.scaler = transformer_rate(full_channels[0], rho)
        else:
            raise ValueError(f"{name} has no HeteroFL width scaler")
    return model


def extract(full_state: Mapping[str, torch.Tensor], spec: SliceSpec) -> dict[str, torch.Tensor]:
    """Cut the sub-model's tensors out of a full state dict (copies, never views)."""
    out = {}
    for name, index in spec.items():
        t = full_state[name][index]
        # Advanced indexing already copies; pure slices are views and must not alias the server model.
        out[name] = t if any(isinstance(i, torch.Tensor) for i in index) else t.clone()
    return out


def scatter(
    sub_state: Mapping[str, torch.Tensor],
    spec: SliceSpec,
    full_shapes: Mapping[str, Sequence[int]],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Place a sub-model's tensors into zero-filled full-size tensors.

    Args:
        sub_state: the sub-model's state dict (e.g. a client upload).
        spec: the :data:`SliceSpec` the sub-model was extracted with.
        full_shapes: full tensor shapes by name.

    Returns:
        ``(dense, coverage)``: dense tensors (zeros outside the slice) and boolean masks of the
        coordinates the sub-model covers, both keyed like ``spec``.
    """
    dense, coverage = {}, {}
    for name, index in spec.items():
        sub = sub_state[name]
        d = torch.zeros(tuple(full_shapes[name]), dtype=sub.dtype, device=sub.device)
        c = torch.zeros(tuple(full_shapes[name]), dtype=torch.bool, device=sub.device)
        d[index] = sub
        c[index] = True
        dense[name], coverage[name] = d, c
    return dense, coverage
