"""One flat vector per model: every float parameter and buffer of a module lives in a single tensor.

The engine never deep-copies modules. A model's state is a 1-D tensor; the module's parameters and
float buffers (BatchNorm running statistics) are *views* into it, so copying a sub-model into the
working model is one ``copy_`` and aggregation, masks and optimiser state are vector operations.

The layout records, for every tensor, where it sits in the vector and whether it is prunable
(reference §4.1: prunable = conv/linear/embedding weights the model declares; biases, norms and
plain layers are never pruned). Prunable layers are numbered in the model's declared order; that
index selects the per-layer mask-search coefficient (reference §4.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def as_float(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A bool tensor as 0/1 floats, through a uint8 view of the same bytes.

    Same values as ``mask.to(dtype)``, several times faster on CPU: converting 6.6 M bools (the LEAF CNN)
    takes 0.9 ms this way against 5.3 ms (2-core CPU, torch 2.14). The engine converts a mask per job,
    per arrival and per evaluation.
    """
    return mask.view(torch.uint8).to(dtype)


def nonzero(values: torch.Tensor) -> torch.Tensor:
    """``values != 0`` as a bool tensor (NaN counts as non-zero, -0.0 as zero), by conversion.

    Same result as the comparison, about 6x faster on CPU (0.8 ms against 4.7 ms for 6.6 M floats):
    released coverage is detected by value wherever a rule counts it (§6).
    """
    return values.bool()


def any_per_row(mask: torch.Tensor) -> torch.Tensor:
    """``mask.any(1)`` of a 2-D bool tensor through a uint8 row maximum (same result; bool ``any`` over
    rows is ~40x slower on CPU: 9 ms against 0.2 ms for the LEAF CNN's 2048 x 3136 layer)."""
    return mask.view(torch.uint8).amax(1).bool()


@dataclass(frozen=True)
class Segment:
    """One tensor of the model inside the flat vector."""

    name: str
    start: int
    numel: int
    shape: tuple[int, ...]
    is_buffer: bool
    layer: int  # index among prunable layers, or -1 when never pruned

    @property
    def stop(self) -> int:
        return self.start + self.numel

    @property
    def prunable(self) -> bool:
        return self.layer >= 0


class FlatLayout:
    """Positions of all float tensors of a module in one flat vector."""

    def __init__(self, segments: list[Segment]):
        self.segments = segments
        self.numel = segments[-1].stop if segments else 0
        self.by_name = {s.name: s for s in segments}
        self.layers = [s for s in segments if s.prunable]  # ordered by layer index
        prunable = torch.zeros(self.numel, dtype=torch.bool)
        for s in self.layers:
            prunable[s.start : s.stop] = True
        self.prunable = prunable
        self.num_prunable = int(prunable.sum())
        # BN running statistics and other buffers are state, but not trained by SGD.
        trainable = torch.ones(self.numel, dtype=torch.bool)
        for s in segments:
            if s.is_buffer:
                trainable[s.start : s.stop] = False
        self.trainable = trainable

    def view(self, flat: torch.Tensor, name: str) -> torch.Tensor:
        s = self.by_name[name]
        return flat[s.start : s.stop].view(s.shape)


def _float_buffers(module: nn.Module) -> list[tuple[str, nn.Module, str, torch.Tensor]]:
    out = []
    for mod_name, mod in module.named_modules():
        for buf_name, buf in mod.named_buffers(recurse=False):
            if buf is not None and buf.is_floating_point() and buf_name in mod._buffers:
                if buf_name in getattr(mod, "_non_persistent_buffers_set", set()):
                    continue  # e.g. causal masks: constants, not state
                full = f"{mod_name}.{buf_name}" if mod_name else buf_name
                out.append((full, mod, buf_name, buf))
    return out


class Binding:
    """Re-points a flattened module's parameters and float buffers at views of another flat vector.

    After :func:`flatten_module` the module computes with whatever vector its tensors view; binding it to
    a client's own output buffer lets local training run there instead of in a shared working vector
    that would then be copied out (one model-sized copy per training saved). Parameters keep their
    identity (``.data`` is swapped), so optimiser lists and autograd see the same objects.
    """

    def __init__(self, module: nn.Module, layout: FlatLayout):
        params = dict(module.named_parameters())
        buffers = {name: (mod, buf_name) for name, mod, buf_name, _ in _float_buffers(module)}
        self.params = [(params[s.name], s) for s in layout.segments if not s.is_buffer]
        self.buffers = [(*buffers[s.name], s) for s in layout.segments if s.is_buffer]

    @staticmethod
    def fits(flat: torch.Tensor, like: torch.Tensor) -> bool:
        """Whether ``flat`` can hold the module: a contiguous vector of ``like``'s size, dtype, device."""
        return (
            flat.shape == like.shape
            and flat.dtype == like.dtype
            and flat.device == like.device
            and flat.is_contiguous()
        )

    def to(self, flat: torch.Tensor) -> None:
        with torch.no_grad():
            for p, s in self.params:
                p.data = flat[s.start : s.stop].view(s.shape)
            for mod, buf_name, s in self.buffers:
                mod._buffers[buf_name] = flat[s.start : s.stop].view(s.shape)


def flatten_module(
    module: nn.Module, prunable: list[str], device: torch.device | str = "cpu"
) -> tuple[FlatLayout, torch.Tensor, torch.Tensor]:
    """Rebind a module's float parameters and buffers as views into one flat tensor.

    Args:
        module: the model; modified in place.
        prunable: names of prunable parameters, in layer order (index = coefficient index).
        device: where the flat storage lives.

    Returns:
        (layout, flat, flat_grad): ``flat`` holds the values; every parameter's ``.grad`` is a view
        into ``flat_grad`` so that ``backward`` accumulates straight into one vector.
    """
    layer_of = {name: i for i, name in enumerate(prunable)}
    params = list(module.named_parameters())
    missing = set(prunable) - {n for n, _ in params}
    if missing:
        raise ValueError(f"prunable names not found in model: {sorted(missing)}")
    buffers = _float_buffers(module)
    segments: list[Segment] = []
    offset = 0
    for name, p in params:
        segments.append(Segment(name, offset, p.numel(), tuple(p.shape), False, layer_of.get(name, -1)))
        offset += p.numel()
    for name, _, _, b in buffers:
        segments.append(Segment(name, offset, b.numel(), tuple(b.shape), True, -1))
        offset += b.numel()
    # Prunable layers must be numbered in declared order; segment order is module order.
    layout = FlatLayout(sorted(segments, key=lambda s: s.start))
    layout.layers = sorted(layout.layers, key=lambda s: s.layer)

    flat = torch.empty(offset, device=device)
    flat_grad = torch.zeros(offset, device=device)
    with torch.no_grad():
        for (name, p), seg in zip(params, segments):
            flat[seg.start : seg.stop].copy_(p.detach().reshape(-1))
        for (name, mod, buf_name, b), seg in zip(buffers, segments[len(params) :]):
            flat[seg.start : seg.stop].copy_(b.reshape(-1))
        Binding(module, layout).to(flat)
        for (name, p), seg in zip(params, segments):
            p.grad = flat_grad[seg.start : seg.stop].view(seg.shape)
    # Integer buffers (num_batches_tracked) are not state we aggregate; keep them on the device.
    module.to(device)
    return layout, flat, flat_grad
