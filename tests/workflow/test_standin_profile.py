"""The stand-in study's grid can decide every claim: each claim's cells exist for at least 3 seeds, on stand-in
data only, and the whole study stays the size its README costs."""

import claims as C
import grids as G
import pandas as pd

from tests.workflow.helpers import REPO


def standin_cells():
    cfg = G.deep_merge(G.load_yaml(REPO / "config" / "config.yaml"),
                       G.load_yaml(REPO / "profiles" / "standin" / "workflow-config.yaml"))
    grids = G.load_grids(REPO / "config" / "experiments", cfg["experiments"])
    cells, runs = G.build_cells(cfg, grids)
    return cfg, pd.DataFrame(cells), runs


def selectors(term):
    return [s for t in term["minus"] for s in selectors(t)] if "minus" in term else [term]


def test_every_claim_has_cells_for_three_seeds():
    cfg, cells, _ = standin_cells()
    assert len(cfg["seeds"]) >= 3
    for claim in C.load_claims(REPO / "config" / "claims.yaml"):
        exp = cells[cells["experiment"] == claim.experiment]
        for sel in selectors(claim.left) + selectors(claim.right):
            match = exp
            for key, value in {**C.DEFAULT_WHERE, **claim.where, **sel}.items():
                match = match[match[key].astype(str) == str(value)]
            assert match["seed"].nunique() >= 3, (claim.id, sel)


def test_only_stand_in_data_and_the_costed_number_of_runs():
    _, cells, runs = standin_cells()
    assert set(cells["engine_dataset"]) == {"fmnist", "changelogs"}
    assert {r["dataset"]["name"] for r in runs.values()} == {"fmnist", "changelogs"}
    # results/reference/standin/README.md costs 96 Fashion-MNIST and 21 changelogs runs.
    names = pd.Series([r["dataset"]["name"] for r in runs.values()]).value_counts().to_dict()
    assert names == {"fmnist": 96, "changelogs": 21}
