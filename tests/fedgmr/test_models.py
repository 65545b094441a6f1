"""Tests for the model registry: sizes, prunable layers (reference §4.1), init (§8.1), flat binding."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from fedgmr.flat import flatten_module
from fedgmr.models import MODELS, build_model


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def _lin(cin: int, cout: int) -> int:
    return cin * cout + cout


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------
# Parameter counts at width 1, computed from the §8.1 topologies
# ----------------------------------------------------------------------------------------------


def test_leaf_cnn_parameter_count():
    expected = _conv(1, 32, 5) + _conv(32, 64, 5) + _lin(64 * 7 * 7, 2048) + _lin(2048, 62)
    assert expected == 6_603_710
    assert _num_params(build_model("leaf_cnn")) == expected


def test_vgg11_parameter_count():
    chans = [3, 64, 128, 256, 256, 512, 512, 512, 512]
    convs = sum(_conv(a, b, 3) for a, b in itertools.pairwise(chans))
    expected = convs + _lin(512, 512) + _lin(512, 512) + _lin(512, 10)
    assert expected == 9_750_922
    assert _num_params(build_model("vgg11")) == expected


def _resnet18_count(num_classes: int) -> int:
    total = _conv(3, 64, 7, bias=False) + 2 * 64  # stem conv + norm affine
    cin = 64
    for cout in (64, 128, 256, 512):
        for b in range(2):
            total += _conv(cin, cout, 3, False) + 2 * cout + _conv(cout, cout, 3, False) + 2 * cout
            if b == 0 and cin != cout:
                total += _conv(cin, cout, 1, False) + 2 * cout  # downsample conv + norm
            cin = cout
    return total + _lin(512, num_classes)


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_resnet18_parameter_count(norm):
    # torchvision's resnet18 has 11,689,512 parameters with 1000 classes; ours has a 100-class fc.
    assert _resnet18_count(1000) == 11_689_512
    model = build_model("resnet18", norm=norm)
    assert _num_params(model) == _resnet18_count(100) == 11_227_812
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    assert len(norms) == 20
    assert all(isinstance(m, nn.GroupNorm if norm == "gn" else nn.BatchNorm2d) for m in norms)


def test_transformer_parameter_count():
    v, d, f, length = 10_000, 96, 384, 128
    layer = 4 * _lin(d, d) + _lin(d, f) + _lin(f, d) + 2 * 2 * d
    expected = (v + 1) * d + length * d + 2 * d + 2 * layer + _lin(d, d) + 2 * d + _lin(d, v)
    assert expected == 2_175_760
    assert _num_params(build_model("transformer_lm", vocab_size=v)) == expected


# ----------------------------------------------------------------------------------------------
# Prunable layers (§4.1)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "count"),
    [
        ("leaf_cnn", {"variant": "bp"}, 3),
        ("leaf_cnn", {"variant": "plain"}, 4),
        ("vgg11", {"variant": "bp"}, 10),
        ("vgg11", {"variant": "plain"}, 11),
        ("resnet18", {}, 18),
        ("resnet18", {"norm": "gn", "variant": "plain"}, 18),
        ("transformer_lm", {"vocab_size": 30}, 15),
        ("transformer_lm", {"vocab_size": 30, "num_layers": 3}, 21),
    ],
)
def test_prunable_layer_counts(name, kwargs, count):
    model = build_model(name, width=0.25, **kwargs)
    assert len(model.prunable) == count
    assert len(set(model.prunable)) == count
    params = dict(model.named_parameters())
    for pname in model.prunable:
        # Only weights of conv / linear / embedding layers are prunable: never biases or norms.
        assert pname.endswith(".weight") and params[pname].dim() >= 2, pname


def test_prunable_order_and_exclusions():
    lm = build_model("transformer_lm", vocab_size=30)
    assert lm.prunable[:8] == [
        "pos_embedding.weight",
        "tok_embedding.weight",
        "layers.0.q.weight",
        "layers.0.k.weight",
        "layers.0.v.weight",
        "layers.0.o.weight",
        "layers.0.ffn1.weight",
        "layers.0.ffn2.weight",
    ]
    assert lm.prunable[-1] == "decoder.linear1.weight"
    assert "decoder.linear2.weight" not in lm.prunable

    resnet = build_model("resnet18", width=0.25)
    assert resnet.prunable[0] == "conv1.weight" and resnet.prunable[-1] == "fc.weight"
    assert not any("downsample" in n for n in resnet.prunable)
    assert "layer2.0.downsample.0.weight" in dict(resnet.named_parameters())

    assert build_model("vgg11").prunable[-1] == "fc2.weight"
    assert build_model("vgg11", variant="plain").prunable[-1] == "fc3.weight"
    assert "fc2.weight" not in build_model("leaf_cnn").prunable


def test_task_attribute():
    assert {n: MODELS[n].task for n in MODELS} == {
        "leaf_cnn": "image",
        "vgg11": "image",
        "resnet18": "image",
        "transformer_lm": "lm",
    }


# ----------------------------------------------------------------------------------------------
# Forward shapes
# ----------------------------------------------------------------------------------------------


def test_forward_shapes():
    torch.manual_seed(0)
    assert build_model("leaf_cnn")(torch.randn(2, 1, 28, 28)).shape == (2, 62)
    assert build_model("vgg11", width=0.25)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert build_model("resnet18", width=0.125, num_classes=7)(torch.randn(2, 3, 40, 40)).shape == (2, 7)
    lm = build_model("transformer_lm", vocab_size=50, seq_len=16)
    assert lm(torch.randint(0, 51, (3, 11))).shape == (3, 11, 50)
    with pytest.raises(ValueError, match="exceeds"):
        lm(torch.randint(0, 51, (1, 17)))


def test_resnet18_full_size_at_168_pixels():
    torch.manual_seed(0)
    model = build_model("resnet18").eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 168, 168)).shape == (1, 100)


def test_transformer_is_causal():
    torch.manual_seed(0)
    lm = build_model("transformer_lm", vocab_size=40, seq_len=12).eval()
    tokens = torch.randint(0, 41, (2, 10))
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 41
    with torch.inference_mode():
        a, b = lm(tokens), lm(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


# ----------------------------------------------------------------------------------------------
# Initialisation (§8.1) and determinism
# ----------------------------------------------------------------------------------------------


def _kaiming_uniform_bound(a: float, fan: int) -> float:
    return math.sqrt(2.0 / (1 + a * a)) * math.sqrt(3.0 / fan)


def test_initialisation_follows_reference():
    torch.manual_seed(0)
    leaf = build_model("leaf_cnn")
    for w, fan_out in ((leaf.fc1.weight, 2048), (leaf.fc2.weight, 62)):
        bound = _kaiming_uniform_bound(0.0, fan_out)
        assert 0.95 * bound < w.abs().max() <= bound

    for variant, fan in (("bp", 512), ("plain", 10)):
        fc3 = build_model("vgg11", variant=variant).fc3.weight
        bound = _kaiming_uniform_bound(1.5, fan)
        assert 0.95 * bound < fc3.abs().max() <= bound
    fc1 = build_model("vgg11").fc1.weight
    assert fc1.abs().max() <= _kaiming_uniform_bound(0.0, 512)

    resnet = build_model("resnet18")
    assert resnet.conv1.weight.std().item() == pytest.approx(math.sqrt(2.0 / (64 * 49)), rel=0.05)
    assert torch.equal(resnet.bn1.weight, torch.ones(64)) and torch.equal(resnet.bn1.bias, torch.zeros(64))
    assert resnet.fc.weight.abs().max() <= _kaiming_uniform_bound(1.5, 512)

    lm = build_model("transformer_lm", vocab_size=2000)
    assert lm.layers[0].ffn1.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert lm.layers[1].ffn2.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert lm.tok_embedding.weight.std().item() == pytest.approx(1.0, rel=0.05)
    assert lm.pos_embedding.weight.std().item() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_init_is_deterministic_given_seed(name):
    def state(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build_model(
            name, width=0.25, **({"vocab_size": 30} if name == "transformer_lm" else {})
        ).state_dict()

    a, b, c = state(1), state(1), state(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point() and a[k].numel() > 100)


# ----------------------------------------------------------------------------------------------
# Width multiplier and explicit channels
# ----------------------------------------------------------------------------------------------


def test_width_multiplier_shrinks_hidden_widths_only():
    leaf = build_model("leaf_cnn", width=0.5)
    assert leaf.conv1.weight.shape == (16, 1, 5, 5)
    assert leaf.fc1.weight.shape == (1024, 32 * 49)
    assert leaf.fc2.weight.shape == (62, 1024)

    vgg = build_model("vgg11", width=0.25)
    assert vgg.convs[0].weight.shape == (16, 3, 3, 3)
    assert vgg.fc3.weight.shape == (10, 128)

    resnet = build_model("resnet18", width=0.1, norm="gn")
    assert resnet.channels == (8, 12, 24, 52)  # multiples of 4 so GroupNorm(4) fits
    assert resnet.conv1.weight.shape[1] == 3 and resnet.fc.weight.shape == (100, 52)

    lm = build_model("transformer_lm", vocab_size=30, width=0.5, seq_len=20)
    assert lm.channels == (48, 192)
    assert lm.tok_embedding.weight.shape == (31, 48)
    assert lm.pos_embedding.weight.shape == (20, 48)
    assert lm.decoder.linear2.weight.shape == (30, 48)


def test_explicit_channels_override_width():
    leaf = build_model("leaf_cnn", channels=(3, 5, 7), width=0.5)
    assert leaf.fc1.weight.shape == (7, 5 * 49)
    with pytest.raises(ValueError, match="3 positive hidden widths"):
        build_model("leaf_cnn", channels=(3, 5))
    with pytest.raises(ValueError, match="divisible"):
        build_model("transformer_lm", channels=(10, 20))


def test_build_model_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("lenet")
    with pytest.raises(ValueError, match="norm"):
        build_model("leaf_cnn", norm="gn")
    with pytest.raises(ValueError, match="variant"):
        build_model("vgg11", variant="wide")
    with pytest.raises(ValueError, match="num_classes"):
        build_model("transformer_lm", num_classes=10)


# ----------------------------------------------------------------------------------------------
# HeteroFL width scaler
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "transformer_lm"])
def test_scaler_acts_in_training_only(name):
    torch.manual_seed(0)
    if name == "resnet18":
        model, x = build_model(name, width=0.125, norm="gn"), torch.randn(2, 3, 32, 32)
    else:
        model, x = build_model(name, vocab_size=30, seq_len=8), torch.randint(0, 31, (2, 8))
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = 0.0  # compare train and eval outputs without dropout noise
    assert model.scaler is None
    base_train = model.train()(x)
    base_eval = model.eval()(x)
    model.scaler = 0.5
    torch.testing.assert_close(model.eval()(x), base_eval)
    assert not torch.allclose(model.train()(x), base_train)


# ----------------------------------------------------------------------------------------------
# Flat binding (fedgmr.flat)
# ----------------------------------------------------------------------------------------------


def _small(name: str, **kwargs) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if name == "leaf_cnn":
        return build_model(name, width=0.25, **kwargs), torch.randn(3, 1, 28, 28)
    if name == "vgg11":
        return build_model(name, width=0.125, **kwargs), torch.randn(3, 3, 32, 32)
    if name == "resnet18":
        return build_model(name, width=0.125, **kwargs), torch.randn(3, 3, 32, 32)
    return build_model(name, vocab_size=30, seq_len=8, **kwargs), torch.randint(0, 31, (3, 8))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("leaf_cnn", {}),
        ("vgg11", {"variant": "plain"}),
        ("resnet18", {}),
        ("resnet18", {"norm": "gn"}),
        ("transformer_lm", {}),
    ],
)
def test_flatten_module_binds_every_tensor(name, kwargs):
    model, x = _small(name, **kwargs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layout, flat, flat_grad = flatten_module(model, model.prunable)

    # Values survive, and every parameter is a view into the one flat storage.
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    storage = flat.untyped_storage().data_ptr()
    for pname, p in model.named_parameters():
        assert p.untyped_storage().data_ptr() == storage, pname
    n_params = sum(p.numel() for p in model.parameters())
    n_buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    assert layout.numel == flat.numel() == n_params + n_buffers
    assert [s.name for s in layout.layers] == model.prunable

    # Writing the vector changes the module.
    flat[layout.by_name[model.prunable[0]].start] = 123.0
    assert dict(model.named_parameters())[model.prunable[0]].flatten()[0].item() == 123.0

    # One backward fills the flat gradient vector in place.
    model.train()
    out = model(x)
    out.float().pow(2).mean().backward()
    assert flat_grad[layout.trainable].abs().sum() > 0
    for s in layout.layers:
        assert flat_grad[s.start : s.stop].abs().sum() > 0, s.name


def test_flatten_module_holds_batchnorm_running_stats():
    model, x = _small("resnet18")
    layout, flat, _ = flatten_module(model, model.prunable)
    seg = layout.by_name["bn1.running_mean"]
    assert seg.is_buffer and not seg.prunable
    assert model.bn1.running_mean.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
    assert torch.all(flat[seg.start : seg.stop] == 0)
    model.train()(x)  # a training forward updates the running statistics ... inside the flat vector
    assert flat[seg.start : seg.stop].abs().sum() > 0
    # Float buffers are state but not trained.
    assert not layout.trainable[seg.start : seg.stop].any()
    # No hidden buffers in the transformer (the causal mask is built by SDPA, not stored).
    lm, _ = _small("transformer_lm")
    assert not [b for b in lm.buffers()]
