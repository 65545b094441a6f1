"""Model registry: the four paper networks, built by name.

Every model is a plain ``nn.Module`` (no parametrizations, no masked layer classes) so that
:func:`fedgmr.flat.flatten_module` can rebind its tensors into one flat vector; masking is done by
the engine on that vector. Each model carries ``prunable`` (parameter names in the layer order of
reference §4.1), ``task`` (``"image"`` or ``"lm"``), ``channels`` (its hidden widths) and ``name``.

Initialisation draws from torch's global RNG; seed it (``torch.manual_seed``) before building.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

from torch import nn

from fedgmr.models.leaf_cnn import LeafCNN
from fedgmr.models.resnet18 import ResNet18
from fedgmr.models.transformer_lm import TransformerLM
from fedgmr.models.vgg11 import VGG11

MODELS: dict[str, Callable[..., nn.Module]] = {
    "leaf_cnn": LeafCNN,
    "vgg11": VGG11,
    "resnet18": ResNet18,
    "transformer_lm": TransformerLM,
}

# build_model's generic defaults; an option left at its default is not passed on, so each model
# keeps its own default (62 / 10 / 100 classes, 2 encoder layers, ...).
_DEFAULTS: dict[str, object] = {
    "num_classes": None,
    "vocab_size": None,
    "width": 1.0,
    "variant": "bp",
    "norm": "bn",
    "seq_len": 128,
    "channels": None,
    "num_layers": None,
}


def build_model(
    name: str,
    *,
    num_classes: int | None = None,
    vocab_size: int | None = None,
    width: float = 1.0,
    variant: str = "bp",
    norm: str = "bn",
    seq_len: int = 128,
    channels: Sequence[int] | None = None,
    num_layers: int | None = None,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: one of :data:`MODELS`.
        num_classes: image classes (default: the paper's dataset: 62, 10, 100).
        vocab_size: LM output vocabulary (the token embedding has one row more); default 10,000.
        width: multiplier on hidden widths for small-scale runs (inputs and outputs unchanged).
        variant: ``"bp"`` (output layer plain, not prunable) or ``"plain"`` (output layer prunable).
        norm: ResNet normalisation, ``"bn"`` or ``"gn"`` (GroupNorm(4), width-sliced baselines).
        seq_len: LM positional-embedding length.
        channels: explicit hidden widths (overrides ``width``); see each model's ``channels``.
        num_layers: LM encoder layers (2; FjORD uses 3).

    Returns:
        The model, initialised from torch's global RNG.

    Raises:
        ValueError: unknown name, or a non-default option that the model does not take.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    given = {
        "num_classes": num_classes,
        "vocab_size": vocab_size,
        "width": width,
        "variant": variant,
        "norm": norm,
        "seq_len": seq_len,
        "channels": channels,
        "num_layers": num_layers,
    }
    kwargs = {k: v for k, v in given.items() if v is not None and v != _DEFAULTS[k]}
    accepted = inspect.signature(MODELS[name]).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"model {name!r} does not take option(s) {unknown}")
    return MODELS[name](**kwargs)


__all__ = ["MODELS", "VGG11", "LeafCNN", "ResNet18", "TransformerLM", "build_model"]
