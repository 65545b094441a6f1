"""Health flags on fixture runs: a run flat at chance is flagged, a healthy one is not; identical curves and
unreached budgets are named; the comparison table shows the flags and no Δ for stand-in cells."""

import common  # noqa: E402
import health  # noqa: E402
import numpy as np
import pytest

from tests.workflow.helpers import fixture_table


def table_with(labels, engine="fmnist", dataset="femnist", seeds=(0, 1, 2)):
    t = fixture_table("main", labels, datasets=(dataset,), seeds=seeds)
    t["engine_dataset"] = engine
    return t


def flags_of(table):
    f = health.cell_flags(table)
    return dict(zip(f["method_label"], f["flags"]))


def test_flat_run_at_chance_is_flagged_and_a_healthy_one_is_not():
    t = table_with(["Healthy", "Flat"])
    flat = t["method_label"] == "Flat"
    t.loc[flat, "acc"] = 0.085  # below Fashion-MNIST's 10 % chance
    t.loc[flat, "loss_server"] = 2.30 + 0.001 * t.loc[flat, "tick"]  # rising
    flags = flags_of(t)
    assert flags["Healthy"] == ""
    assert "at chance" in flags["Flat"] and "loss not decreasing" in flags["Flat"]


def test_chance_depends_on_the_engine_dataset():
    t = table_with(["A"], engine="femnist")
    t["acc"] = 0.05  # 5 %: above FEMNIST's 1/62 + 2 points? 1.6 + 2 = 3.6 -> not at chance
    assert flags_of(t)["A"] == ""
    t = table_with(["A"], engine="fmnist")
    t["acc"] = 0.05
    assert flags_of(t)["A"] == "at chance"


def test_budget_not_reached_is_flagged():
    t = table_with(["Short"])
    t["budget"] = 1e9
    assert flags_of(t)["Short"] == "budget not reached"


def test_identical_curves_are_named_and_explained_for_released_fedrolex():
    t = table_with(["HeteroFL", "FedRolex", "FjORD"], engine="femnist")
    t.loc[t["method_label"] == "HeteroFL", "method"] = "heterofl"
    t.loc[t["method_label"] == "FedRolex", ["method", "patience"]] = ["fedrolex", 10]  # config: FEMNIST FedRolex 10
    hetero = t[t["method_label"] == "HeteroFL"].sort_values(["seed", "tick"])
    rolex = t[t["method_label"] == "FedRolex"].sort_values(["seed", "tick"])
    t.loc[rolex.index, "acc"] = hetero["acc"].to_numpy()  # FedRolex's curves := HeteroFL's
    flags = flags_of(t)
    assert flags["FedRolex"] == "identical to HeteroFL by construction (B11)"
    assert flags["HeteroFL"] == "identical to FedRolex by construction (B11)"
    assert flags["FjORD"] == ""
    assert health._static_fedrolex_pair("fedrolex_aux", "heterofl_aux")
    assert not health._static_fedrolex_pair("fedrolex_aux", "heterofl")
    assert not health._static_fedrolex_pair("fjord", "heterofl")


def test_comparison_shows_flags_acc_at_end_seed_interval_and_no_delta_for_stand_ins():
    t = table_with(["FedGMR", "FedAvg"])
    t.loc[t["method_label"] == "FedAvg", "acc"] = 0.08
    ref = common.read_reference(common.DEFAULT_REFERENCE, ["main"])
    comp = common.compare(t, ref)
    row = comp.set_index("method_label").loc["FedAvg"]
    assert row["flags"].startswith("at chance")
    assert np.isnan(row["delta"]) and row["verdict"].startswith("not compared")
    assert row["acc_end"] == 8.0
    gmr = comp.set_index("method_label").loc["FedGMR"]
    assert gmr["seed_ci"] > 0 and gmr["n_seeds"] == 3
    header, rows = common.comparison_rows(comp)
    assert "flags" in header and "ours at end" in header
    delta_col = header.index("Δ")
    assert all(r[delta_col] == "–" for r in rows)


def test_compared_cell_keeps_its_delta():
    t = fixture_table("main", ["FedGMR"], datasets=("femnist",), seeds=(0, 1, 2))
    comp = common.compare(t, common.read_reference(common.DEFAULT_REFERENCE, ["main"]))
    row = comp.iloc[0]
    assert (row["split"], row["heterogeneity"]) == ("noniid", "high")
    assert row["delta"] == pytest.approx(row["value"] - 81.86)  # FEMNIST non-IID high in the main table
