"""Runs -> one tidy table per experiment (pandas only; never imports fedgmr).

Output ``<results>/tables/<experiment>.parquet``: one row per cell x evaluation tick, the cell's run
parameters (CELL_COLUMNS) beside the engine's metrics (METRIC_COLUMNS). A run shared by several cells
appears once per cell. ``<experiment>.cells.csv`` lists every cell of the experiment, run or not, with the
reason it was not run.

Used by the ``collect`` rule (``script:``) and callable directly for tests:
``python workflow/scripts/collect.py --cells cells.json --runs-root results/runs --table T --cells-out C``.
"""


import argparse
import json
import sys
from pathlib import Path

import pandas as pd

CELL_COLUMNS = {
    "experiment": "string", "dataset": "string", "engine_dataset": "string", "split": "string",
    "heterogeneity": "string", "method_label": "string", "family": "string", "method": "string",
    "semantics": "string", "seed": "int64", "patience": "int64", "fixed_density": "float64",
    "budget": "float64", "run_id": "string",
}
METRIC_COLUMNS = {
    "tick": "int64", "round": "int64", "virtual_time": "float64", "wall_time": "float64",
    "acc_server": "float64", "acc_avg": "float64", "acc": "float64", "loss_server": "float64",
    "avg_density": "float64", "upload_mb": "float64", "download_mb": "float64",
}
CELLS_COLUMNS = list(CELL_COLUMNS) + ["status", "reason"]
# Older metrics.csv column -> tidy table column: engines before issue 9 wrote megabytes under "bytes_*" names.
RENAMED = {"bytes_up": "upload_mb", "bytes_down": "download_mb"}


class TableError(ValueError):
    """A run's results do not satisfy the tidy-table contract."""


class FailedRun(Exception):
    """The run was recorded as failed (workflow/scripts/mark_failed.py)."""


def _wall_times(run_dir: Path, metrics: pd.DataFrame) -> pd.Series:
    """Wall-clock seconds per tick from timing.csv (tick, wall_time_s); NaN where it has none."""
    try:
        timing = pd.read_csv(run_dir / "timing.csv")
        by_tick = dict(zip(timing["tick"], timing["wall_time_s"]))
    except (OSError, KeyError, pd.errors.EmptyDataError):
        by_tick = {}
    return metrics["tick"].map(by_tick).astype("float64") if "tick" in metrics else float("nan")


def read_run(run_dir: Path) -> pd.DataFrame:
    """Read and check one run's metrics.csv (design §3)."""
    info = json.loads((run_dir / "run.json").read_text())
    status = info.get("status")
    if status == "failed":
        raise FailedRun(info.get("error", "engine error"))
    if status != "complete":
        raise TableError(f"{run_dir}/run.json: status is {status!r}, not 'complete'")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    # Older engines named the traffic columns bytes_* while writing MB: same values, named by their unit.
    metrics = metrics.rename(columns={k: v for k, v in RENAMED.items() if k in metrics and v not in metrics})
    if "wall_time" not in metrics.columns:
        # Newer engines keep the machine-dependent wall clock out of metrics.csv, in timing.csv.
        metrics["wall_time"] = _wall_times(run_dir, metrics)
    missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
    if missing:
        raise TableError(f"{run_dir}/metrics.csv: missing columns {missing}")
    if metrics.empty:
        raise TableError(f"{run_dir}/metrics.csv: no evaluations")
    metrics = metrics[list(METRIC_COLUMNS)].astype(METRIC_COLUMNS)
    acc = metrics["acc"]
    if acc.isna().any() or (acc < 0).any() or (acc > 1).any():
        raise TableError(f"{run_dir}/metrics.csv: acc must be in [0, 1]")
    if (metrics["virtual_time"].diff().dropna() < 0).any():
        raise TableError(f"{run_dir}/metrics.csv: virtual_time decreases")
    return metrics


def collect(cells: list[dict], runs_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build (tidy table, cells table) for the cells of one experiment."""
    cells_df = pd.DataFrame(cells, columns=CELLS_COLUMNS)
    frames = []
    cache: dict[str, pd.DataFrame] = {}
    for index, cell in cells_df[cells_df["status"] == "run"].iterrows():
        rid = cell["run_id"]
        if rid not in cache:
            try:
                cache[rid] = read_run(runs_root / rid)
            except FailedRun as exc:
                cache[rid] = f"engine error: {exc}"
        if isinstance(cache[rid], str):
            cells_df.loc[index, ["status", "reason"]] = ["failed", cache[rid]]
            continue
        frame = cache[rid].copy()
        for col in CELL_COLUMNS:
            frame.insert(len(frame.columns) - len(METRIC_COLUMNS), col, cell[col])
        frames.append(frame)
    if frames:
        table = pd.concat(frames, ignore_index=True)
    else:
        table = pd.DataFrame({c: pd.Series(dtype=t) for c, t in {**CELL_COLUMNS, **METRIC_COLUMNS}.items()})
    table = table.astype({**CELL_COLUMNS, **METRIC_COLUMNS})
    validate(table)
    return table, cells_df


def validate(table: pd.DataFrame) -> None:
    """The tidy-table contract the figure scripts rely on."""
    expected = list(CELL_COLUMNS) + list(METRIC_COLUMNS)
    if list(table.columns) != expected:
        raise TableError(f"columns {list(table.columns)} != {expected}")
    keys = ["experiment", "dataset", "split", "heterogeneity", "method_label", "semantics", "seed", "tick"]
    if table.duplicated(keys).any():
        dup = table[table.duplicated(keys, keep=False)][keys].head(3).to_dict("records")
        raise TableError(f"duplicate cell x tick rows, e.g. {dup}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", required=True, help="JSON file with the experiment's cells")
    p.add_argument("--runs-root", required=True, type=Path)
    p.add_argument("--table", required=True, type=Path)
    p.add_argument("--cells-out", required=True, type=Path)
    a = p.parse_args(argv)
    cells = json.loads(Path(a.cells).read_text())
    write(cells, a.runs_root, a.table, a.cells_out)
    return 0


def write(cells: list[dict], runs_root: Path, table_path: Path, cells_path: Path) -> None:
    table, cells_df = collect(cells, Path(runs_root))
    Path(table_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(table_path, index=False)
    cells_df.to_csv(cells_path, index=False)
    print(f"{table_path}: {len(table)} rows from {table['run_id'].nunique()} runs; "
          f"{int((cells_df['status'] != 'run').sum())} cells not run")


def _from_snakemake(smk) -> None:
    with open(smk.log[0], "w") as log:
        sys.stdout = sys.stderr = log
        write(json.loads(smk.params.cells), Path(smk.params.runs_root), Path(smk.output.table),
              Path(smk.output.cells))


if "snakemake" in globals():
    _from_snakemake(globals()["snakemake"])
elif __name__ == "__main__":
    sys.exit(main())
