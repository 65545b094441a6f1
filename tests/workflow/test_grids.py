"""Grid expansion: patience per setting, shared runs, subsets, switched-off and unregistered methods."""

import copy

import grids as G
import pytest

from tests.workflow.helpers import REPO

CONFIG = G.load_yaml(REPO / "config" / "config.yaml")
ALL = CONFIG["experiments"]


@pytest.fixture
def cfg():
    return copy.deepcopy(CONFIG)


def grids_for(names):
    return G.load_grids(REPO / "config" / "experiments", names)


def test_every_grid_validates_and_names_its_outputs():
    jsonschema = pytest.importorskip("jsonschema")
    schema = G.load_yaml(REPO / "workflow" / "schemas" / "experiment.schema.yaml")
    outputs = []
    for name, grid in grids_for(ALL).items():
        jsonschema.validate(grid, schema)
        outputs += grid["outputs"]
        assert (REPO / "paper_figures").joinpath(*[]).is_dir()
        for out in grid["outputs"]:
            assert (REPO / "paper_figures" / f"{out}.py").is_file(), out
    assert len(outputs) == len(set(outputs))
    config_schema = G.load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
    jsonschema.validate(CONFIG, config_schema)


def test_patience_follows_reference_5_1(cfg):
    assert G.patience_for(cfg, "setting", "cifar10", "noniid", "high", "fedgmr") == [15]
    assert G.patience_for(cfg, "setting", "femnist", "iid", "medium", "fedgmr") == [4]
    assert G.patience_for(cfg, "setting", "imagenet100", "iid", "low", "fedgmr") == [40]
    assert G.patience_for(cfg, "baseline", "femnist", "iid", "high", "fedrolex") == [10]
    assert G.patience_for(cfg, "baseline", "femnist", "iid", "high", "fedavg") == [5]
    assert G.patience_for(cfg, "baseline", "cifar10", "iid", "high", "fiarse") == [10]
    assert G.patience_for(cfg, "baseline", "stackoverflow", "noniid", "low", "fedasync") == [10]
    sweep = {"default": [1, 3], "stackoverflow": [2, 4]}
    assert G.patience_for(cfg, sweep, "stackoverflow", "noniid", "high", "fedgmr") == [2, 4]
    assert G.patience_for(cfg, sweep, "femnist", "noniid", "high", "fedgmr") == [1, 3]


def test_full_grids_share_runs_and_list_unregistered_methods(cfg):
    available = {"fedgmr", "fedavg", "fedasync", "wo_asyn", "wo_gmr", "wo_buff", "wo_ims", "wo_buff_ims",
                 "gmr_ga", "gmr_fa", "ga", "fa", "fedgmr_fixed", "fixed_density"}
    cells, runs = G.build_cells(cfg, grids_for(ALL), available=available)
    by_exp = {}
    for c in cells:
        by_exp.setdefault(c["experiment"], []).append(c)
    seeds = len(cfg["seeds"])
    assert len(by_exp["main"]) == 4 * 2 * 3 * 7 * seeds
    assert len(by_exp["cross_method"]) == 12 * seeds
    # FedGMR's main cell and its ablation / aggregation / trigger / semantics cells are one run.
    def run_of(exp, label, **where):
        hits = [c for c in by_exp[exp] if c["method_label"] == label and c["seed"] == 0
                and all(c[k] == v for k, v in where.items())]
        assert len(hits) == 1, (exp, label, hits)
        return hits[0]["run_id"]
    setting = {"dataset": "cifar10", "split": "noniid", "heterogeneity": "high"}
    shared = {run_of("main", "FedGMR", **setting), run_of("ablation", "FedGMR", **setting),
              run_of("aggregation", "GMR+MA", **setting), run_of("trigger", "GMR (ES)", **setting),
              run_of("patience", "FedGMR P=15", **setting),
              run_of("semantics", "FedGMR", semantics="released", **setting)}
    assert len(shared) == 1 and "" not in shared
    assert run_of("semantics", "FedGMR", semantics="clean", **setting) not in shared
    not_run = {c["method"] for c in cells if c["status"] == "not_run"}
    assert {"heterofl", "fedrolex", "fjord", "fiarse", "heterofl_aux_gmr"} <= not_run
    assert all(c["reason"] for c in cells if c["status"] == "not_run")
    assert all(rid in runs for rid in {c["run_id"] for c in cells if c["status"] == "run"})


def test_run_config_of_a_cell(cfg):
    cells, runs = G.build_cells(dict(cfg, experiments=["trigger"]), grids_for(["trigger"]))
    fixed = next(c for c in cells if c["method"] == "fedgmr_fixed" and c["dataset"] == "cifar10")
    raw = runs[fixed["run_id"]]
    assert raw["restoration"] == {"patience": 15, "trigger": "time", "time_total": 220000.0}
    assert raw["dataset"] == {"name": "cifar10", "root": "resources/cifar10", "partition": "noniid"}
    assert raw["clients"] == {"heterogeneity": "high"}
    femnist = next(c for c in cells if c["method"] == "fedgmr" and c["dataset"] == "femnist")
    assert runs[femnist["run_id"]]["dataset"]["partition"] == "natural"


def test_subset_disabled_and_invalid(cfg):
    cfg["experiments"] = ["main", "motivation"]
    cfg["subset"] = {"all": {"dataset": ["femnist"], "split": ["noniid"], "heterogeneity": ["high"]},
                     "motivation": {"fixed_density": [0.05, 1.0], "split": ["iid"]}}
    cfg["seeds"] = [0]
    cfg["methods"] = {"disabled": ["fedavg"]}

    def resolve(raw):
        if raw["method"] == "fedasync":
            raise ValueError("schedule.max_time: out of range")
        return G.local_run_id(raw)

    cells, runs = G.build_cells(cfg, grids_for(cfg["experiments"]), resolve=resolve)
    main = [c for c in cells if c["experiment"] == "main"]
    assert len(main) == 7
    status = {c["method"]: (c["status"], c["reason"]) for c in main}
    assert status["fedgmr"] == ("run", "")
    assert status["fedavg"][0] == "not_run" and "disabled" in status["fedavg"][1]
    assert status["fedasync"][0] == "not_run" and "max_time" in status["fedasync"][1]
    motivation = [c for c in cells if c["experiment"] == "motivation"]
    assert sorted(c["fixed_density"] for c in motivation) == [0.05, 1.0]
    assert {c["method_label"] for c in motivation} == {"density 0.05", "density 1.0"}
    with pytest.raises(G.GridError):
        G.build_cells(dict(cfg, subset={"all": {"colour": ["red"]}}), grids_for(cfg["experiments"]))


def test_demo_profile_has_cells_in_every_experiment(cfg):
    demo = G.deep_merge(cfg, G.load_yaml(REPO / "profiles" / "demo" / "workflow-config.yaml"))
    cells, runs = G.build_cells(demo, grids_for(demo["experiments"]))
    for name in demo["experiments"]:
        assert any(c["experiment"] == name and c["status"] == "run" for c in cells), name
    assert len(runs) <= 45  # the demo must stay small (local ids: a few more than the engine's)
    assert {r["dataset"]["name"] for r in runs.values()} == {"fmnist", "changelogs"}


def test_engine_threads_are_part_of_every_run_config(cfg):
    """config engine.threads is the train job's `threads` and the run config's run.threads (the engine's)."""
    cfg["engine"]["threads"] = 4
    cells, runs = G.build_cells(dict(cfg, experiments=["trigger"]), grids_for(["trigger"]))
    assert runs and {raw["run"]["threads"] for raw in runs.values()} == {4}
