"""collect: run directories -> tidy table with the run parameters; broken runs are refused."""

import json

import pandas as pd
import pytest
from collect import CELL_COLUMNS, METRIC_COLUMNS, TableError, collect, write

from tests.workflow.helpers import fake_run


def make_run(root, run_id, status="complete", **changes):
    d = root / run_id
    d.mkdir(parents=True)
    metrics = fake_run(12, 5.0, 0.7, 0.05)
    for k, v in changes.items():
        metrics[k] = v
    metrics.to_csv(d / "metrics.csv", index=False)
    (d / "run.json").write_text(json.dumps({"status": status}))
    return d


def cell(run_id, **changes):
    base = {"experiment": "main", "dataset": "femnist", "engine_dataset": "fmnist", "split": "noniid",
            "heterogeneity": "high", "method_label": "FedGMR", "family": "FedGMR", "method": "fedgmr",
            "semantics": "released", "seed": 0, "patience": 7, "fixed_density": None, "budget": 30.0,
            "run_id": run_id, "status": "run", "reason": ""}
    return base | changes


def test_collect_joins_cells_and_metrics(tmp_path):
    make_run(tmp_path, "aaaaaaaaaaaa")
    cells = [cell("aaaaaaaaaaaa"), cell("aaaaaaaaaaaa", dataset="cifar10", patience=15),
             cell("", method_label="HeteroFL", method="heterofl", status="not_run", reason="not registered")]
    table, cells_df = collect(cells, tmp_path)
    assert list(table.columns) == list(CELL_COLUMNS) + list(METRIC_COLUMNS)
    assert len(table) == 24  # one run shared by two cells, 12 evaluations each
    assert set(table["dataset"]) == {"femnist", "cifar10"}
    assert table["fixed_density"].isna().all()
    assert list(cells_df["status"]) == ["run", "run", "not_run"]
    out = tmp_path / "tables" / "main.parquet"
    write(cells, tmp_path, out, tmp_path / "tables" / "main.cells.csv")
    back = pd.read_parquet(out)
    assert back.dtypes["seed"] == "int64" and back.dtypes["acc"] == "float64"


def test_collect_with_no_runs_writes_an_empty_table(tmp_path):
    table, cells_df = collect([cell("", status="not_run", reason="disabled")], tmp_path)
    assert table.empty and list(table.columns) == list(CELL_COLUMNS) + list(METRIC_COLUMNS)
    assert len(cells_df) == 1


@pytest.mark.parametrize("status,changes,message", [
    ("running", {}, "status"),
    ("complete", {"acc": 1.5}, "acc"),
])
def test_collect_refuses_broken_runs(tmp_path, status, changes, message):
    make_run(tmp_path, "bbbbbbbbbbbb", status=status, **changes)
    with pytest.raises(TableError, match=message):
        collect([cell("bbbbbbbbbbbb")], tmp_path)


def test_failed_runs_become_cells_not_run(tmp_path):
    import subprocess
    import sys

    from tests.workflow.helpers import REPO

    log = tmp_path / "x.log"
    log.write_text("Traceback ...\nTypeError: float() argument must be a real number, not 'NoneType'\n")
    cfg = tmp_path / "c.json"
    cfg.write_text('{"method": "fedgmr"}')
    subprocess.run([sys.executable, str(REPO / "workflow" / "scripts" / "mark_failed.py"), "--out",
                    str(tmp_path / "cccccccccccc"), "--log", str(log), "--config", str(cfg)], check=True)
    make_run(tmp_path, "aaaaaaaaaaaa")
    table, cells_df = collect([cell("aaaaaaaaaaaa"), cell("cccccccccccc", semantics="clean")], tmp_path)
    assert set(table["semantics"]) == {"released"}
    failed = cells_df[cells_df["run_id"] == "cccccccccccc"].iloc[0]
    assert failed["status"] == "failed" and "NoneType" in failed["reason"]


def test_traffic_columns_say_their_unit_and_old_names_are_read(tmp_path):
    new = make_run(tmp_path, "aaaaaaaaaaaa")
    old = make_run(tmp_path, "bbbbbbbbbbbb")
    m = pd.read_csv(old / "metrics.csv").rename(columns={"upload_mb": "bytes_up", "download_mb": "bytes_down"})
    m.to_csv(old / "metrics.csv", index=False)  # an engine before issue 9: MB under "bytes_*" names
    table, _ = collect([cell("aaaaaaaaaaaa"), cell("bbbbbbbbbbbb", seed=1)], tmp_path)
    assert "bytes_up" not in table and "upload_mb" in table and "download_mb" in table
    by_seed = table.groupby("seed")["upload_mb"].apply(list)
    assert by_seed[0] == by_seed[1] == list(pd.read_csv(new / "metrics.csv")["upload_mb"])
