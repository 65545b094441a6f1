"""Tests for HeteroFL / FedRolex width slicing (reference §7.3-7.4)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fedgmr.models import build_model
from fedgmr.models.slicing import (
    build_submodel,
    extract,
    kept_channels,
    per_dim_indices,
    scatter,
    slice_indices,
    transformer_rate,
    width_channels,
)

CASES = [
    ("leaf_cnn", {}),
    ("vgg11", {"width": 0.25}),
    ("resnet18", {"width": 0.25}),
    ("resnet18", {"width": 0.25, "norm": "gn"}),
    ("transformer_lm", {"vocab_size": 30, "seq_len": 8}),
]


def _shapes(model: nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in model.state_dict().items()}


def _dims(spec, name):
    return per_dim_indices(spec[name])


# ----------------------------------------------------------------------------------------------
# Widths
# ----------------------------------------------------------------------------------------------


def test_width_channels_resnet_example_from_reference():
    # §7.3: "Example ResNet widths for rho = 0.05: 12 / 28 / 56 / 112".
    assert width_channels("resnet18", (64, 128, 256, 512), 0.05) == (12, 28, 56, 112)
    assert build_submodel("resnet18", 0.05, norm="gn").channels == (12, 28, 56, 112)


def test_width_channels_rules():
    # ceil(sqrt(0.05) * C): sqrt(0.05) = 0.2236...
    assert width_channels("leaf_cnn", (32, 64, 2048), 0.05) == (8, 15, 458)
    vgg_full = (64, 128, 256, 256, 512, 512, 512, 512, 512, 512)
    assert width_channels("vgg11", vgg_full, 0.05) == (15, 29, 58, 58) + (115,) * 6
    # Transformer: q = round(0.2236 * 24) / 24 = 5 / 24 -> d = 20, FFN = 80.
    assert transformer_rate(96, 0.05) == 5 / 24
    assert width_channels("transformer_lm", (96, 384), 0.05) == (20, 80)
    assert width_channels("transformer_lm", (96, 384), 0.25) == (48, 192)
    assert width_channels("transformer_lm", (96, 384), 1e-6) == (4, 16)  # q clipped at 1/24
    # ResNet: 4 * floor(ceil(sqrt(rho) C) / 4), never below 4.
    assert width_channels("resnet18", (64, 128, 256, 512), 0.5) == (44, 88, 180, 360)
    assert width_channels("resnet18", (8, 16, 32, 64), 0.01) == (4, 4, 4, 4)
    for name, full in [
        ("leaf_cnn", (32, 64, 2048)),
        ("resnet18", (64, 128, 256, 512)),
        ("transformer_lm", (96, 384)),
    ]:
        assert width_channels(name, full, 1.0) == full
    with pytest.raises(ValueError, match="rho"):
        width_channels("leaf_cnn", (32, 64, 2048), 0.0)
    with pytest.raises(ValueError, match="rule"):
        width_channels("lenet", (3,), 0.5)


def test_kept_channels_wraps_and_expands():
    assert kept_channels(5, 3, offset=4).tolist() == [4, 0, 1]
    assert kept_channels(5, 3, offset=-1).tolist() == [4, 0, 1]  # the release's torch.roll direction
    assert kept_channels(4, 2, offset=3, repeat=3).tolist() == [9, 10, 11, 0, 1, 2]


# ----------------------------------------------------------------------------------------------
# Exact indices
# ----------------------------------------------------------------------------------------------


def test_heterofl_static_indices_leaf():
    spec = slice_indices(build_model("leaf_cnn"), 0.05)
    out, inp, kh, kw = _dims(spec, "conv1.weight")
    assert out.tolist() == list(range(8)) and inp is None and kh is None and kw is None
    out, inp, _, _ = _dims(spec, "conv2.weight")
    assert out.tolist() == list(range(15)) and inp.tolist() == list(range(8))
    out, inp = _dims(spec, "fc1.weight")
    assert out.tolist() == list(range(458))
    assert inp.tolist() == list(range(15 * 49))  # front 15 channels x 7x7 positions
    out, inp = _dims(spec, "fc2.weight")
    assert out is None and inp.tolist() == list(range(458))  # 62 classes kept
    assert _dims(spec, "fc2.bias") == [None]
    assert _dims(spec, "conv2.bias")[0].tolist() == list(range(15))


def test_fedrolex_rolling_indices_two_rounds_with_wrap_around():
    full = build_model("leaf_cnn")
    r30, r31 = slice_indices(full, 0.05, offset=30), slice_indices(full, 0.05, offset=31)
    # conv1: C = 32, k = 8.
    assert _dims(r30, "conv1.weight")[0].tolist() == [30, 31, 0, 1, 2, 3, 4, 5]
    assert _dims(r31, "conv1.weight")[0].tolist() == [31, 0, 1, 2, 3, 4, 5, 6]
    # conv2: C = 64, k = 15; inputs follow conv1's kept outputs.
    out, inp, _, _ = _dims(r31, "conv2.weight")
    assert out.tolist() == list(range(31, 46)) and inp.tolist() == [31, 0, 1, 2, 3, 4, 5, 6]
    # fc1 input: conv2 channels expanded x49, in window order.
    fc_in = _dims(r30, "fc1.weight")[1]
    assert fc_in.tolist()[:49] == list(range(30 * 49, 31 * 49))
    assert fc_in.tolist()[-49:] == list(range(44 * 49, 45 * 49))
    # fc1: C = 2048, k = 458, offset 2040 wraps after 8.
    r2040 = slice_indices(full, 0.05, offset=2040)
    fc_out = _dims(r2040, "fc1.weight")[0].tolist()
    assert fc_out[:9] == [2040, 2041, 2042, 2043, 2044, 2045, 2046, 2047, 0]
    # conv2 wraps at 64: offset 2040 = 56 mod 64.
    wrapped = _dims(r2040, "fc1.weight")[1].tolist()
    assert wrapped[:49] == list(range(56 * 49, 57 * 49)) and wrapped[8 * 49 : 9 * 49] == list(range(49))


def test_resnet_indices_follow_blocks():
    full = build_model("resnet18", width=0.25, norm="gn")  # stages 16, 32, 64, 128
    spec = slice_indices(full, 0.25, offset=13)  # k = 8, 16, 32, 64
    stage1 = ((13 + torch.arange(8)) % 16).tolist()
    stage2 = ((13 + torch.arange(16)) % 32).tolist()
    assert _dims(spec, "conv1.weight")[0].tolist() == stage1
    assert _dims(spec, "layer1.1.conv2.weight")[0].tolist() == stage1
    out, inp, _, _ = _dims(spec, "layer2.0.downsample.0.weight")
    assert out.tolist() == stage2 and inp.tolist() == stage1
    assert _dims(spec, "layer2.0.downsample.1.weight")[0].tolist() == stage2
    out, inp, _, _ = _dims(spec, "layer2.0.conv1.weight")
    assert out.tolist() == stage2 and inp.tolist() == stage1
    out, inp = _dims(spec, "fc.weight")
    assert out is None and inp.tolist() == ((13 + torch.arange(64)) % 128).tolist()


def test_transformer_indices():
    full = build_model("transformer_lm", vocab_size=30, seq_len=8)
    spec = slice_indices(full, 0.05, offset=90)  # d: 20 of 96, FFN: 80 of 384
    d = ((90 + torch.arange(20)) % 96).tolist()
    rows, cols = _dims(spec, "tok_embedding.weight")
    assert rows is None and cols.tolist() == d  # vocabulary kept, embedding dimension sliced
    out, inp = _dims(spec, "layers.1.ffn1.weight")
    assert out.tolist() == list(range(90, 170)) and inp.tolist() == d
    assert _dims(spec, "layers.0.o.weight")[0].tolist() == d
    assert _dims(spec, "decoder.linear2.weight")[0] is None


# ----------------------------------------------------------------------------------------------
# Sub-models, extraction and scatter
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kwargs"), CASES)
@pytest.mark.parametrize("offset", [0, 37])
def test_extract_matches_submodel_and_scatter_round_trips(name, kwargs, offset):
    torch.manual_seed(0)
    full = build_model(name, **kwargs)
    sub = build_submodel(name, 0.05, **kwargs)
    spec = slice_indices(full, 0.05, offset=offset)
    full_state = full.state_dict()
    assert set(spec) == set(full_state) == set(sub.state_dict())

    part = extract(full_state, spec)
    assert _shapes(sub) == {k: v.shape for k, v in part.items()}
    sub.load_state_dict(part)  # the sub-model accepts the slices as they are

    dense, cover = scatter(part, spec, _shapes(full))
    for k in full_state:
        assert dense[k].shape == full_state[k].shape and cover[k].dtype == torch.bool
        assert int(cover[k].sum()) == part[k].numel(), k  # each kept coordinate exactly once
        torch.testing.assert_close(dense[k][cover[k]], full_state[k][cover[k]])
        assert not dense[k][~cover[k]].any(), k
    again = extract(dense, spec)
    assert all(torch.equal(again[k], part[k]) for k in part)


def test_extract_never_aliases_the_full_model():
    full = build_model("leaf_cnn")
    part = extract(full.state_dict(), slice_indices(full, 0.05))
    part["fc2.bias"].add_(1.0)  # fc2.bias is kept whole: a view would leak into the server model
    assert not torch.equal(part["fc2.bias"], full.fc2.bias)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("leaf_cnn", {}), ("vgg11", {"width": 0.25}), ("resnet18", {"width": 0.25})],
)
def test_submodel_computes_the_zero_filled_full_model(name, kwargs):
    """A sliced sub-model equals the full model with everything outside the slice zeroed.

    Holds exactly for ReLU networks without normalisation statistics over channels (BN in eval
    mode included), so it checks every index, e.g. the LEAF x49 expansion under a rolled window.
    """
    torch.manual_seed(0)
    full = build_model(name, **kwargs)
    if name == "resnet18":
        full.train()(torch.randn(8, 3, 32, 32))  # non-trivial running statistics
    full.eval()
    x = torch.randn(2, 1, 28, 28) if name == "leaf_cnn" else torch.randn(2, 3, 32, 32)
    sub = build_submodel(name, 0.05, **kwargs).eval()
    spec = slice_indices(full, 0.05, offset=11)
    part = extract(full.state_dict(), spec)
    sub.load_state_dict(part)
    dense, _ = scatter(part, spec, _shapes(full))
    full.load_state_dict(dense)
    with torch.no_grad():
        torch.testing.assert_close(sub(x), full(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "kwargs", "offset"),
    [
        ("leaf_cnn", {}, 5),
        ("resnet18", {"width": 0.25}, 5),
        ("transformer_lm", {"vocab_size": 30, "seq_len": 8}, 24),
    ],
)
def test_full_width_rolled_model_is_a_channel_permutation(name, kwargs, offset):
    # At rho = 1 FedRolex keeps every channel in rolled order: the same function, permuted inside.
    # Transformer offsets must be multiples of the head size (24) to keep heads intact. (GroupNorm
    # groups are likewise regrouped by a roll, so the ResNet case uses BN, which is per channel.)
    torch.manual_seed(0)
    full = build_model(name, **kwargs).eval()
    sub = build_submodel(name, 1.0, **kwargs).eval()
    spec = slice_indices(full, 1.0, offset=offset)
    sub.load_state_dict(extract(full.state_dict(), spec))
    x = (
        torch.randint(0, 31, (2, 8))
        if name == "transformer_lm"
        else (torch.randn(2, 1, 28, 28) if name == "leaf_cnn" else torch.randn(2, 3, 32, 32))
    )
    assert not torch.equal(sub.state_dict()[next(iter(spec))], full.state_dict()[next(iter(spec))])
    with torch.no_grad():
        torch.testing.assert_close(sub(x), full(x), rtol=1e-4, atol=1e-5)


def test_leaf_submodel_at_rho_005_is_small_and_trains():
    torch.manual_seed(0)
    full = build_model("leaf_cnn")
    sub = build_submodel("leaf_cnn", 0.05)
    n_full = sum(p.numel() for p in full.parameters())
    n_sub = sum(p.numel() for p in sub.parameters())
    # widths 8 / 15 / 458: 8*25+8 + 8*15*25+15 + 15*49*458+458 + 458*62+62
    assert n_sub == 208 + 3015 + 337_088 + 28_458 == 368_769
    assert n_sub < 0.06 * n_full
    sub.train()
    logits = sub(torch.randn(4, 1, 28, 28))
    assert logits.shape == (4, 62)
    target = nn.functional.one_hot(torch.tensor([0, 5, 9, 61]), 62).float()
    nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
    grads = [p.grad for p in sub.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


def test_build_submodel_scaler():
    assert build_submodel("resnet18", 0.25, norm="gn").scaler is None
    assert build_submodel("resnet18", 0.25, norm="gn", use_scaler=True).scaler == 0.5
    lm = build_submodel("transformer_lm", 0.05, vocab_size=30, use_scaler=True)
    assert lm.scaler == 5 / 24 and lm.channels == (20, 80)
    with pytest.raises(ValueError, match="no HeteroFL width scaler"):
        build_submodel("leaf_cnn", 0.05, use_scaler=True)


def test_build_submodel_of_a_width_scaled_model():
    full = build_model("leaf_cnn", width=0.5)  # 16, 32, 1024
    sub = build_submodel("leaf_cnn", 0.25, width=0.5)
    assert sub.channels == (8, 16, 512)
    part = extract(full.state_dict(), slice_indices(full, 0.25))
    assert {k: v.shape for k, v in part.items()} == _shapes(sub)
    assert math.isclose(
        sum(p.numel() for p in sub.parameters()) / sum(p.numel() for p in full.parameters()),
        0.25,
        rel_tol=0.05,
    )
