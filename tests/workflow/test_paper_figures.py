"""Every table and figure script runs on a fixture table and writes its files; the report assembles them."""

import subprocess
import sys

import pandas as pd
import pytest

from tests.workflow.helpers import PAPER_FIGURES, REFERENCE, fixture_table

ABLATION = ["FedGMR", "w/o Asyn", "w/o GMR", "w/o Buff", "w/o IMS", "w/o (Buff, IMS)"]
CROSS = {f"{b}{s}": b for b in ("HeteroFL", "FjORD") for s in ("", "+Aux", "+Aux+GMR")}
FIXTURES = {
    "table_main": lambda: fixture_table("main", ["FedGMR", "FedAvg", "FedAsync"]),
    "fig_main": lambda: fixture_table("main", ["FedGMR", "FedAvg", "FedAsync"]),
    "table_ablation": lambda: fixture_table("ablation", ABLATION, datasets=("cifar10",)),
    "fig_ablation": lambda: fixture_table("ablation", ABLATION, datasets=("cifar10", "femnist")),
    "table_aggregation": lambda: fixture_table("aggregation", ["GMR+MA", "GMR+GA", "GA"]),
    "table_trigger": lambda: fixture_table("trigger", ["GMR (ES)", "GMR (Fixed)", "w/o GMR"]),
    "fig_trigger": lambda: fixture_table("trigger", ["GMR (ES)", "GMR (Fixed)", "w/o GMR"]),
    "table_cross_method": lambda: fixture_table("cross_method", list(CROSS), datasets=("femnist",),
                                                families=CROSS),
    "fig_cross_method": lambda: fixture_table("cross_method", list(CROSS), datasets=("femnist",),
                                              families=CROSS),
    "fig_motivation": lambda: fixture_table("motivation", ["density"], densities=(0.05, 0.2, 1.0)),
    "table_patience": lambda: _patience(),
    "fig_patience": lambda: _patience(),
    "table_semantics": lambda: fixture_table("semantics", ["FedGMR", "FedAsync"],
                                             semantics=("released", "clean")),
}


def _patience():
    frames = []
    for p in (1, 3, 7):
        t = fixture_table("patience", [f"FedGMR P={p}"], datasets=("cifar10", "femnist"), patience=(p,))
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def run_script(name, table_path, out, cells=None):
    args = [sys.executable, str(PAPER_FIGURES / f"{name}.py"), "--table", str(table_path), "--reference",
            str(REFERENCE), "--out", str(out)]
    if cells:
        args += ["--cells", str(cells)]
    return subprocess.run(args, capture_output=True, text=True, env={"MPLBACKEND": "Agg", "PATH": ""})


def test_every_paper_output_has_a_fixture():
    scripts = {p.stem for p in PAPER_FIGURES.glob("table_*.py")} | {p.stem for p in PAPER_FIGURES.glob("fig_*.py")}
    assert scripts == set(FIXTURES)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_script_on_fixture_table(tmp_path, name):
    table = FIXTURES[name]()
    path = tmp_path / "t.parquet"
    table.to_parquet(path)
    cells = tmp_path / "t.cells.csv"
    cells_df = table.drop_duplicates(["method_label", "dataset", "seed", "semantics", "patience",
                                      "fixed_density"])
    cells_df = cells_df.assign(status="run", reason="")
    extra = cells_df.iloc[:1].assign(method_label="HeteroFL", method="heterofl", status="not_run",
                                     reason="method not registered")
    pd.concat([cells_df, extra]).to_csv(cells, index=False)
    proc = run_script(name, path, tmp_path / name, cells)
    assert proc.returncode == 0, proc.stderr
    if name.startswith("fig_"):
        for ext in ("pdf", "png"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 1000
    else:
        md = (tmp_path / f"{name}.md").read_text()
        tex = (tmp_path / f"{name}.tex").read_text()
        comp = pd.read_csv(tmp_path / f"{name}.csv")
        assert "\\begin{tabular}" in tex
        assert "HeteroFL" in md and "not registered" in md  # not-run cells are listed
        assert len(comp) == table.groupby(["dataset", "method_label", "semantics"]).ngroups
        assert comp["verdict"].notna().all()


def test_table_compares_with_the_paper(tmp_path):
    table = fixture_table("main", ["FedGMR"], datasets=("cifar10",), seeds=(0,))
    table["split"] = "iid"
    table.to_parquet(tmp_path / "t.parquet")
    proc = run_script("table_main", tmp_path / "t.parquet", tmp_path / "table_main")
    assert proc.returncode == 0, proc.stderr
    comp = pd.read_csv(tmp_path / "table_main.csv")
    assert comp.loc[0, "paper"] == pytest.approx(84.52)  # README value wins over the notebook's
    assert comp.loc[0, "delta"] == pytest.approx(comp.loc[0, "value"] - 84.52)
    assert comp.loc[0, "verdict"].startswith(("within", "outside"))


def test_script_on_empty_table(tmp_path):
    table = fixture_table("main", ["FedGMR"]).iloc[:0]
    table.to_parquet(tmp_path / "t.parquet")
    for name in ("table_main", "fig_main", "fig_motivation", "fig_patience"):
        proc = run_script(name, tmp_path / "t.parquet", tmp_path / name)
        assert proc.returncode == 0, (name, proc.stderr)


def test_report_lists_tables_verdicts_not_run_and_deviations(tmp_path):
    tables, cells = [], []
    for name, exp, labels, sem in (("table_main", "main", ["FedGMR", "FedAvg"], ("released",)),
                                   ("table_semantics", "semantics", ["FedGMR"], ("released", "clean"))):
        t = fixture_table(exp, labels, datasets=("cifar10",), semantics=sem)
        t.to_parquet(tmp_path / f"{exp}.parquet")
        c = t.drop_duplicates(["method_label", "seed", "semantics"]).assign(status="run", reason="")
        if exp == "main":
            c = pd.concat([c, c.iloc[:1].assign(method_label="FjORD", method="fjord", status="not_run",
                                                 reason="method disabled in config (methods.disabled)")])
        c.to_csv(tmp_path / f"{exp}.cells.csv", index=False)
        assert run_script(name, tmp_path / f"{exp}.parquet", tmp_path / name).returncode == 0
        tables.append(tmp_path / f"{name}.csv")
        cells.append(tmp_path / f"{exp}.cells.csv")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "fig_main.png").write_bytes(b"png")
    out = tmp_path / "report.md"
    proc = subprocess.run([sys.executable, str(PAPER_FIGURES / "report.py"), "--results", str(tmp_path),
                           "--tables", *map(str, tables), "--cells", *map(str, cells), "--figures",
                           str(tmp_path / "figures" / "fig_main.png"), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## Main comparison" in text and "## Deviations" in text and "## Cells not run" in text
    assert "FjORD" in text and "methods.disabled" in text
    assert text.count("within spread") + text.count("outside spread") >= 4
    assert "figures/fig_main.png" in text


def _capture(monkeypatch):
    """Replace style.save with a recorder of the figure's panel titles, legend labels and suptitle."""
    import style

    seen = {}

    def save(fig, stem):
        axes = [ax for ax in fig.axes if ax.get_title()]
        seen["titles"] = [ax.get_title() for ax in axes]
        seen["legends"] = [[t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []
                           for ax in axes]
        seen["suptitle"] = fig._suptitle.get_text() if fig._suptitle else ""
        import matplotlib.pyplot as plt
        plt.close(fig)

    monkeypatch.setattr(style, "save", save)
    return seen


def _stand_in(table, engine="fmnist"):
    table = table.copy()
    table["engine_dataset"] = engine
    return table


def test_curve_panels_name_the_stand_in_and_show_budget_and_density_in_the_legend(tmp_path, monkeypatch):
    import curves

    seen = _capture(monkeypatch)
    table = _stand_in(fixture_table("ablation", ABLATION, datasets=("femnist",)))
    curves.plot_curves(table, tmp_path / "f", ["dataset", "split", "heterogeneity"], "T", smooth=20)
    assert seen["titles"] == ["fmnist, stand-in for FEMNIST non-IID high"]
    legend = seen["legends"][0]
    assert any(label.startswith("budget T") for label in legend)
    assert "average density (right axis)" in legend
    # 40 evaluations per run: the paper's 20-evaluation smoothing shrinks to 4, and the figure says so.
    assert "moving average over 4 evaluations" in seen["suptitle"]


def test_curve_panels_of_the_paper_dataset_carry_its_name_only(tmp_path, monkeypatch):
    import curves

    seen = _capture(monkeypatch)
    curves.plot_curves(fixture_table("main", ["FedGMR"], datasets=("cifar10",)), tmp_path / "f",
                       ["dataset", "split", "heterogeneity"], "T", density=False)
    assert seen["titles"] == ["CIFAR-10 non-IID high"]
    assert "moving average" not in seen["suptitle"]


def test_cross_method_panels_name_the_dataset(tmp_path, monkeypatch):
    import curves

    seen = _capture(monkeypatch)
    table = _stand_in(fixture_table("cross_method", list(CROSS), datasets=("femnist",), families=CROSS))
    curves.plot_curves(table, tmp_path / "f", ["family"], "T")
    assert all(t.endswith("(fmnist, stand-in for FEMNIST)") for t in seen["titles"]), seen["titles"]


def test_patience_figure_draws_no_paper_curve_over_stand_in_data(tmp_path, monkeypatch):
    import fig_patience

    table = pd.concat([_stand_in(_patience()[lambda t: t["dataset"] == "femnist"]),
                       _patience()[lambda t: t["dataset"] == "cifar10"]], ignore_index=True)
    table.to_parquet(tmp_path / "t.parquet")
    seen = _capture(monkeypatch)
    fig_patience.main(["--table", str(tmp_path / "t.parquet"), "--reference", str(REFERENCE), "--out",
                       str(tmp_path / "p")])
    by_title = dict(zip(seen["titles"], seen["legends"]))
    assert by_title["fmnist, stand-in for FEMNIST"] == ["ours"]
    assert sorted(by_title["CIFAR-10"]) == ["ours", "paper"]


def test_report_has_claims_health_and_scope_sections(tmp_path):
    import json

    t = fixture_table("main", ["FedGMR", "FedAvg", "FedAsync"], datasets=("femnist",), seeds=(0, 1, 2))
    t["engine_dataset"] = "fmnist"
    t.loc[t["method_label"] == "FedAvg", "acc"] = 0.08  # at chance on Fashion-MNIST
    t.to_parquet(tmp_path / "main.parquet")
    assert run_script("table_main", tmp_path / "main.parquet", tmp_path / "table_main").returncode == 0
    claims = subprocess.run([sys.executable, str(PAPER_FIGURES / "claims.py"), "--claims",
                             str(PAPER_FIGURES.parent / "config" / "claims.yaml"), "--tables",
                             str(tmp_path / "main.parquet"), "--reference", str(REFERENCE), "--out",
                             str(tmp_path / "claims")], capture_output=True, text=True)
    assert claims.returncode == 0, claims.stderr
    scope = {"experiments": {"main": {"outputs": ["table_main", "fig_main"], "reference": ["main"],
                                      "grid_cells": 252, "kept_cells": 6, "subset": {"dataset": ["femnist"]},
                                      "dropped_values": {"dataset": ["cifar10"], "split": ["iid"]}}},
             "seeds": [0, 1, 2], "datasets": {"femnist": {"engine": "fmnist", "budget": 300, "overrides": {}}},
             "run_overrides": {"model": {"width": 0.25}}, "git": "abc123", "versions": {"torch": "2.x"}}
    (tmp_path / "scope.json").write_text(json.dumps(scope))
    bench = tmp_path / "benchmarks" / "train"
    bench.mkdir(parents=True)
    for i in range(2):
        (bench / f"r{i}.tsv").write_text("s\th:m:s\tmax_rss\tcpu_time\n1800.0\t0:30:00\t100\t3600.0\n")
    out = tmp_path / "report.md"
    proc = subprocess.run([sys.executable, str(PAPER_FIGURES / "report.py"), "--results", str(tmp_path),
                           "--tables", str(tmp_path / "table_main.csv"), "--claims", str(tmp_path / "claims.csv"),
                           "--scope", str(tmp_path / "scope.json"), "--reference", str(REFERENCE), "--out",
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    claims_part = text.split("## Claims")[1].split("\n## ")[0]
    assert "FedGMR > HeteroFL" in claims_part and "fmnist, stand-in for FEMNIST" in claims_part
    row = next(line for line in claims_part.splitlines() if "(`fedasync_beats_fedavg`)" in line)
    cells = [c.strip() for c in row.split("|")]
    # FedAvg is at chance: the claim holds by its interval, and says what it rests on.
    assert cells[4] == "3" and cells[-2] == "**holds (cell flags: FedAvg high: at chance)**"
    diffs = cells[5].split()
    assert len(diffs) == 3 and all(d.startswith("+") for d in diffs)  # signed text survives the CSV round trip
    health_part = text.split("## Health of the cells")[1].split("\n## ")[0]
    assert "FedAvg" in health_part and "at chance" in health_part
    assert "FedGMR" not in health_part and "FedAsync" not in health_part
    scope_part = text.split("## Scope")[1].split("\n## ")[0]
    assert "| `table_main` | 56 | 3 | 0 | 252 | 246 (dataset: cifar10; split: iid)" in scope_part
    assert "1.00 h wall time, 2.00 h CPU time over 2 engine jobs" in scope_part
    assert "abc123" in scope_part and '"width": 0.25' in scope_part
