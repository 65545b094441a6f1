"""HeteroFL, FedRolex and FjORD (reference §7.3-7.5): channel windows, scatter-back and aggregation,
FjORD's width schedules, B21 defaults, and the compute saving of physically smaller models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedgmr.aggregation import BY_VALUE, cover_mask, fjord, ma
from fedgmr.config import resolve_config
from fedgmr.flat import flatten_module
from fedgmr.methods.fedrolex import rolling_offset
from fedgmr.methods.fjord import released_schedule, sampled_schedule, width_set
from fedgmr.methods.registry import METHODS
from fedgmr.methods.width_sliced import flat_index, width_sliced_resolve
from fedgmr.models import build_model
from fedgmr.models.slicing import build_submodel, kept_channels, per_dim_indices, slice_indices


def _leaf(channels=(2, 2, 2), classes=2):
    torch.manual_seed(0)
    full = build_model("leaf_cnn", channels=channels, num_classes=classes)
    layout, flat, _ = flatten_module(full, full.prunable)
    return full, layout, flat


def _sub_layout(rho, channels=(2, 2, 2), classes=2):
    sub = build_submodel("leaf_cnn", rho, channels=channels, num_classes=classes)
    return flatten_module(sub, sub.prunable)[0]


def test_all_variants_registered():
    for fam in ("heterofl", "fedrolex", "fjord", "fiarse"):
        for suffix in ("", "_aux", "_aux_gmr"):
            m = METHODS[fam + suffix]
            assert m.sync == (suffix == "")
            assert m.recover == (suffix == "_aux_gmr") and m.client_triggers == (suffix == "_aux_gmr")
    assert METHODS["heterofl"].ims is False and METHODS["heterofl_aux"].ims is True
    assert METHODS["fjord_aux"].ims is False and METHODS["fjord_aux"].merge == "fjord"  # §1.5: Res ignored


def test_heterofl_front_slice_indices():
    # LEAF CNN with hidden widths (4, 8, 16); rho = 0.25 -> ceil(0.5 C) = (2, 4, 8).
    full = build_model("leaf_cnn", channels=(4, 8, 16), num_classes=3)
    spec = slice_indices(full, 0.25)
    assert per_dim_indices(spec["conv1.weight"])[0].tolist() == [0, 1]
    out, inp = per_dim_indices(spec["conv2.weight"])[:2]
    assert out.tolist() == [0, 1, 2, 3] and inp.tolist() == [0, 1]
    out, inp = per_dim_indices(spec["fc1.weight"])
    assert out.tolist() == list(range(8))
    assert inp.tolist() == list(range(4 * 49))  # 4 conv channels x 7 x 7, channel-major
    assert per_dim_indices(spec["fc2.weight"])[0] is None  # the 3 outputs are kept


def test_fedrolex_windows_for_consecutive_rounds():
    # clean: the window advances by one channel per round (offset tau + 1; initial model tau = -1).
    offsets = [rolling_offset(tau, "clean", "leaf_cnn", 5) for tau in (-1, 0, 1, 2, 6)]
    assert offsets == [0, 1, 2, 3, 7]
    windows = [kept_channels(8, 4, o).tolist() for o in offsets]
    assert windows == [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [7, 0, 1, 2]]
    full = build_model("leaf_cnn", channels=(8, 8, 8), num_classes=2)
    # rho = 0.25 keeps ceil(0.5 * 8) = 4 channels; the window at offset 7 wraps around
    assert per_dim_indices(slice_indices(full, 0.25, 7)["conv2.weight"])[1].tolist() == [7, 0, 1, 2]
    # released, FEMNIST/CIFAR models: static (B11)
    assert {rolling_offset(tau, "released", "leaf_cnn", 5) for tau in range(-1, 20)} == {0}
    assert {rolling_offset(tau, "released", "vgg11", 5) for tau in range(-1, 20)} == {0}
    # released ResNet/transformer: torch.roll(arange(C), t)[:k] with t the last tick's round
    offs = [rolling_offset(tau, "released", "resnet18", 5) for tau in (-1, 0, 4, 5, 9, 12)]
    assert offs == [0, 0, 0, -5, -5, -10]
    assert kept_channels(8, 4, -5).tolist() == torch.roll(torch.arange(8), 5)[:4].tolist() == [3, 4, 5, 6]


def test_flat_index_gathers_the_sub_model():
    full, layout, flat = _leaf((4, 8, 16), 3)
    sub_layout = _sub_layout(0.25, (4, 8, 16), 3)
    idx = flat_index(layout, sub_layout, slice_indices(full, 0.25, 3))
    sub_flat = flat[idx]
    w = layout.view(flat, "conv2.weight")
    got = sub_layout.view(sub_flat, "conv2.weight")
    assert torch.equal(got, w[[3, 4, 5, 6]][:, [3, 0]])  # out window (3..6) of 8, in window (3, 0) of 4
    assert idx.unique().numel() == idx.numel() == sub_layout.numel


def test_scatter_back_and_aggregation_with_overlapping_slices():
    # Two clients at rho = 0.25 of a LEAF CNN with widths (2, 2, 2): each keeps 1 channel per hidden layer.
    # Client A window offset 0 (channel 0), client B offset 1 (channel 1): they overlap only on the
    # unsliced tensors (conv1 input, fc2 rows, fc2 bias).
    full, layout, flat = _leaf()
    sub_layout = _sub_layout(0.25)
    g = torch.ones_like(flat)
    ups, covs = [], []
    for offset, value in ((0, 2.0), (1, 4.0)):
        idx = flat_index(layout, sub_layout, slice_indices(full, 0.25, offset))
        up = torch.zeros_like(flat)
        up[idx] = value  # what the client trained, scattered back zero-filled
        cov = torch.zeros_like(flat, dtype=torch.bool)
        cov[idx] = True
        ups.append(up)
        covs.append(cov)
    out = ma(g, ups, covs, [0.5, 0.5])
    conv1 = layout.view(out, "conv1.weight")
    assert torch.all(conv1[0] == 2.0) and torch.all(conv1[1] == 4.0)
    assert layout.view(out, "conv1.bias").tolist() == [2.0, 4.0]
    conv2 = layout.view(out, "conv2.weight")
    assert torch.all(conv2[0, 0] == 2.0) and torch.all(conv2[1, 1] == 4.0)
    assert torch.all(conv2[0, 1] == 1.0) and torch.all(conv2[1, 0] == 1.0)  # nobody: global kept
    fc1 = layout.view(out, "fc1.weight")  # [2, 2*49]: A covers row 0 cols 0..48, B row 1 cols 49..97
    assert torch.all(fc1[0, :49] == 2.0) and torch.all(fc1[1, 49:] == 4.0)
    assert torch.all(fc1[0, 49:] == 1.0) and torch.all(fc1[1, :49] == 1.0)
    fc2 = layout.view(out, "fc2.weight")  # [2 classes, 2 hidden]: column 0 from A, column 1 from B
    assert torch.all(fc2[:, 0] == 2.0) and torch.all(fc2[:, 1] == 4.0)
    assert layout.view(out, "fc2.bias").tolist() == [3.0, 3.0]  # both: (2 + 4) / 2
    # Staleness weights 3:1 on the shared coordinates: (3*2 + 1*4) / 4 = 2.5
    assert layout.view(ma(g, ups, covs, [3.0, 1.0]), "fc2.bias").tolist() == [2.5, 2.5]
    # FjORD's unweighted rule gives the same plain mean on shared coordinates.
    assert layout.view(fjord(g, ups, covs), "fc2.bias").tolist() == [3.0, 3.0]


def test_fjord_released_width_cycling():
    assert width_set(0.5) == [0.05, 0.1, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0]
    assert released_schedule(1.0, 5) == [0.05, 0.1, 0.2, 0.4, 0.6]  # never 0.8 or 1.0 at K = 5 (B20)
    assert released_schedule(0.5, 6) == [0.05, 0.1, 0.2, 0.4, 0.5, 0.05]
    assert released_schedule(0.1, 5) == [0.05, 0.1, 0.05, 0.1, 0.05]
    assert released_schedule(0.05, 3) == [0.05, 0.05, 0.05]


def test_fjord_clean_samples_uniformly_below_rho():
    rng = np.random.default_rng(0)
    draws = sampled_schedule(0.2, 3000, rng)
    assert set(draws) == {0.05, 0.1, 0.2}
    counts = [draws.count(p) for p in (0.05, 0.1, 0.2)]
    assert all(abs(c - 1000) < 120 for c in counts), counts
    assert sampled_schedule(0.05, 4, rng) == [0.05] * 4
    a = sampled_schedule(1.0, 5, np.random.default_rng([0, 6, 3, 7]))
    assert a == sampled_schedule(1.0, 5, np.random.default_rng([0, 6, 3, 7]))  # deterministic per seed


def test_b21_groupnorm_and_lr_switch():
    cfg = {
        "model": {"name": "resnet18", "norm": None},
        "training": {"lr": 0.02},
        "dataset": {"name": "imagenet100"},
    }
    width_sliced_resolve(cfg)
    assert cfg["model"]["norm"] == "gn" and cfg["training"]["lr"] == 0.05
    cfg = {
        "model": {"name": "resnet18", "norm": "bn"},
        "training": {"lr": 0.02},
        "dataset": {"name": "imagenet100"},
    }
    width_sliced_resolve(cfg)
    assert cfg["model"]["norm"] == "bn" and cfg["training"]["lr"] == 0.02
    cfg = {
        "model": {"name": "resnet18", "norm": None},
        "training": {"lr": 0.1},
        "dataset": {"name": "imagenet100"},
    }
    width_sliced_resolve(cfg)
    assert cfg["model"]["norm"] == "gn" and cfg["training"]["lr"] == 0.1  # an explicit lr is kept


def _sim(method: str, width: float = 1.0):
    from fedgmr.simulation import Simulation

    cfg = resolve_config(
        {
            "method": method,
            "seed": 0,
            "dataset": {"name": "synthetic_image", "synthetic_train": 400, "synthetic_test": 20},
            "model": {"width": width},
            "training": {"local_steps": 1, "batch_size": 20},
            "run": {"progress": False},
        }
    )
    return Simulation(cfg)


def test_heterofl_client_trains_its_slice_only():
    sim = _sim("heterofl", width=0.125)
    m = sim.method
    client = sim.densities.index(0.05)
    sim.net.begin_iteration()
    start, mask = m.client_start(sim, client)
    up, by = m.local_update(sim, client, start, mask)
    assert by[0] == BY_VALUE  # released: coverage by value (§6) ...
    cover = cover_mask(up, by)
    assert torch.equal(cover, up != 0)
    _, idx = m.submodel(sim, 0.05, 0)
    expected = torch.zeros_like(cover)
    expected[idx] = True
    assert not torch.any(cover & ~expected)  # ... and only inside the slice
    assert torch.all(up[~expected] == 0)
    assert not torch.equal(up[idx], sim.global_w[idx])  # it trained
    assert int(expected.sum()) < sim.layout.numel // 10  # physically small


def test_finish_coverage_released_by_value_and_clean_by_slice():
    sim = _sim("heterofl", width=0.125)
    m = sim.method
    _, idx = m.submodel(sim, 0.25, 0)
    trained = torch.randn(idx.numel())
    trained[::7] = 0.0  # trained values that are exactly 0: uncovered by value, covered by the slice
    trained[1] = -0.0
    sim.cfg["switches"]["value_coverage"] = True
    up, cover = m.finish(sim, 0, trained, idx)
    assert cover[0] == BY_VALUE and cover[1] is idx and torch.equal(up[idx], trained)
    assert torch.equal(cover_mask(up, cover), up != 0)
    assert int(torch.count_nonzero(up)) == int(torch.count_nonzero(trained))
    sim.cfg["switches"]["value_coverage"] = False
    up2, cover2 = m.finish(sim, 1, trained, idx)
    slice_ = torch.zeros_like(up2, dtype=torch.bool)
    slice_[idx] = True
    assert torch.equal(up2, up) and cover2[1] is idx and torch.equal(cover_mask(up2, cover2), slice_)


def test_finish_reuses_the_clients_last_upload_with_its_slice_zeroed():
    sim = _sim("heterofl", width=0.125)
    m = sim.method
    _, wide = m.submodel(sim, 0.5, 0)
    _, narrow = m.submodel(sim, 0.1, 0)
    first, cover = m.finish(sim, 2, torch.randn(wide.numel()), wide)
    sim.uploads[2], sim.coverage[2] = first, cover
    trained = torch.randn(narrow.numel())
    second, _ = m.finish(sim, 2, trained, narrow)
    assert second.data_ptr() == first.data_ptr()  # the same buffer ...
    expected = torch.zeros_like(second).index_copy_(0, narrow, trained)
    assert torch.equal(second, expected)  # ... with nothing of the wider slice left in it
    sim.uploads[3], sim.coverage[3] = torch.ones_like(second), BY_VALUE  # a full-model upload: not reused
    third, _ = m.finish(sim, 3, trained, narrow)
    assert third.data_ptr() != sim.uploads[3].data_ptr() and torch.equal(third, expected)


def test_heterofl_small_client_step_trains_the_small_model(monkeypatch):
    # What makes a small client's step cheap, checked without a clock: every forward of its step runs on
    # the physically smaller sub-model (its own module, a fraction of the weights), never the full one.
    from fedgmr.training import Trainer

    sim = _sim("heterofl", width=1.0)  # full-size LEAF CNN (6.6 M parameters)
    m = sim.method
    trained: list[tuple[int, int]] = []  # (id of the module, weights it trained)
    real = Trainer.train

    def spy(self, start, *args, **kwargs):
        trained.append((id(self.model), start.numel()))
        return real(self, start, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", spy)
    w = sim.global_w.clone()
    for rho in (0.05, 1.0):
        x = sim.batcher.train_batch(sim.streams[0].next(sim.batch_size), None)
        m.train_slice(sim, 0, w, rho, 0, [x], None, 0)
    (small_model, small_n), (full_model, full_n) = trained
    assert full_model == id(sim.model) and full_n == sim.layout.numel
    sub, idx = m.submodel(sim, 0.05, 0)
    assert small_model == id(sub.model) != id(sim.model)
    assert small_n == sub.layout.numel == idx.numel() < full_n // 10


def test_aux_gmr_restoration_switches():
    # B8 fixed in both semantics; client promotions gated by begin_save as released (`PRR`, `FJT`).
    for semantics, gated in (("released", True), ("clean", False)):
        from fedgmr.simulation import Simulation

        cfg = resolve_config(
            {
                "method": "heterofl_aux_gmr",
                "semantics": semantics,
                "dataset": {"name": "synthetic_image", "synthetic_train": 200, "synthetic_test": 20},
                "model": {"width": 0.125},
                "run": {"progress": False},
            }
        )
        sim = Simulation(cfg)
        sim.method.on_round(sim, 0, True)
        assert sim.restoration.cfg.freeze_after_global is False
        assert sim.restoration.cfg.gate_clients_on_begin_save is gated


def test_clean_fjord_with_batchnorm_is_refused_not_silently_shared():
    import pytest

    from fedgmr.config import ConfigError, resolve_config

    raw = {
        "method": "fjord",
        "semantics": "clean",
        "dataset": {"name": "imagenet100", "root": "x"},
        "model": {"norm": "bn"},
    }
    with pytest.raises(ConfigError, match="per-width BN"):
        resolve_config(raw)
    raw["semantics"] = "released"
    assert resolve_config(raw)["model"]["norm"] == "bn"


def test_fjord_nested_steps_equal_steps_gathered_from_the_full_vector():
    # FjORD gathers the client's rho-slice once and trains each narrower width inside it. Reference: every
    # step gathers its p-slice from the full-size vector and scatters it back (train_slice), then the
    # upload is the rho-slice, zero-filled. Same copies, so bit-identical weights, momentum and coverage.
    from fedgmr.methods.fjord import released_schedule

    for semantics in ("released", "clean"):
        cfg_over = {"training": {"local_steps": 5, "batch_size": 20, "momentum": 0.9}, "semantics": semantics}
        runs = []
        for reference in (False, True):
            from fedgmr.simulation import Simulation

            cfg = resolve_config(
                {
                    "method": "fjord",
                    "seed": 3,
                    "dataset": {"name": "synthetic_image", "synthetic_train": 400, "synthetic_test": 20},
                    "model": {"width": 0.125},
                    "run": {"progress": False},
                    **cfg_over,
                }
            )
            sim = Simulation(cfg)
            m = sim.method
            sim.net.begin_iteration()
            out = {}
            for client in range(sim.n):
                rho = sim.densities[client]
                start, mask = m.client_start(sim, client)
                if not reference:
                    out[client] = m.local_update(sim, client, start, mask)
                    continue
                widths = m.schedule(sim, client, rho)
                if semantics == "released":
                    assert widths == released_schedule(rho, 5)
                w = start.clone()
                batches = m.batches(sim, client)
                for j, p in enumerate(widths):
                    m.train_slice(sim, client, w, p, 0, [next(batches)], None, m.step_seed(sim, client, j))
                cover = torch.ones_like(w, dtype=torch.bool)
                if rho < 1.0:
                    cover = torch.zeros_like(w, dtype=torch.bool)
                    cover[m.submodel(sim, rho, 0)[1]] = True
                up = torch.where(cover, w, torch.zeros(()))
                out[client] = (up, cover_mask(up, BY_VALUE) if sim.switch("value_coverage") else cover)
            runs.append((out, [mom.clone() for mom in sim.momentum]))
        (a, mom_a), (b, mom_b) = runs
        assert len({sim.densities[c] for c in a}) > 2  # several widths, the full model among them
        for c in a:
            cover_a = cover_mask(a[c][0], a[c][1])
            assert torch.equal(a[c][0], b[c][0]) and torch.equal(cover_a, b[c][1]), (semantics, c)
        assert all(torch.equal(x, y) for x, y in zip(mom_a, mom_b))
        assert any(bool(x.any()) for x in mom_a)  # momentum was used


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("leaf_cnn", {}),
        ("vgg11", {"width": 0.25}),
        ("resnet18", {"width": 0.25, "norm": "gn"}),
        ("resnet18", {"width": 0.25, "norm": "bn"}),
        ("transformer_lm", {"vocab_size": 30, "seq_len": 8}),
    ],
)
def test_flat_index_equals_indexing_a_full_arange(name, kwargs):
    # flat_index builds only the kept positions; the reference indexes the whole arange of each tensor.
    full = build_model(name, **kwargs)
    layout = flatten_module(full, full.prunable, torch.device("cpu"))[0]
    for rho, offset in ((0.05, 0), (0.3, 5), (0.5, 37), (1.0, 3)):
        sub = build_submodel(name, rho, **kwargs)
        sub_layout = flatten_module(sub, sub.prunable, torch.device("cpu"))[0]
        spec = slice_indices(full, rho, offset)
        want = torch.cat(
            [
                torch.arange(layout.by_name[s.name].start, layout.by_name[s.name].stop)
                .view(layout.by_name[s.name].shape)[spec[s.name]]
                .reshape(-1)
                for s in sub_layout.segments
            ]
        )
        got = flat_index(layout, sub_layout, spec)
        assert got.dtype == torch.int64 and torch.equal(got, want), (name, rho, offset)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("leaf_cnn", {}),
        ("vgg11", {"width": 0.25}),
        ("resnet18", {"width": 0.25, "norm": "gn"}),
        ("transformer_lm", {"vocab_size": 30, "seq_len": 8}),  # q/k/v rows: axes with repeats
    ],
)
def test_nested_index_is_the_inner_map_seen_from_the_outer_map(name, kwargs):
    from fedgmr.methods.width_sliced import nested_index

    full = build_model(name, **kwargs)
    layout = flatten_module(full, full.prunable, torch.device("cpu"))[0]

    def side(rho):
        sub = build_submodel(name, rho, **kwargs)
        sub_layout = flatten_module(sub, sub.prunable, torch.device("cpu"))[0]
        spec = slice_indices(full, rho, 0)
        return sub_layout, spec, flat_index(layout, sub_layout, spec)

    for outer, inner in ((0.8, 0.05), (0.6, 0.4), (0.4, 0.4), (1.0, 0.2)):
        lo, so, io = side(outer)
        li, si, ii = side(inner)
        pos = nested_index(layout, (lo, so), (li, si))
        assert torch.equal(io[pos], ii), (name, outer, inner)  # the same entries of the full vector
    with pytest.raises(RuntimeError, match="not inside"):
        nested_index(layout, (li, si), (lo, so))  # the 0.2-slice does not hold the 1.0 one
