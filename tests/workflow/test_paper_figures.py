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
