"""Measured cost of a finished workflow run, from Snakemake's per-job benchmark files.

    python benchmarks/study_cost.py results/standin > results/reference/standin/cost.md

Sums wall and CPU seconds (Snakemake `benchmark:` TSVs under <results>/benchmarks/) per rule, and for the
engine runs per engine dataset and method (read from each run's config.json). CPU seconds are what a run
costs on any machine of this speed; the wall sum overstates the elapsed time when jobs ran side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd


def read_benchmarks(results: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted((results / "benchmarks").glob("*/*.tsv")):
        b = pd.read_csv(tsv, sep="\t").iloc[-1]  # the last repeat
        row = {"rule": tsv.parent.name, "job": tsv.stem, "wall_s": float(b["s"]),
               "cpu_s": float(b.get("cpu_time", float("nan"))), "max_rss_mb": float(b.get("max_rss", float("nan")))}
        cfg = results / "runs" / tsv.stem / "config.json"
        if row["rule"] == "train" and cfg.is_file():
            c = json.loads(cfg.read_text())
            row.update(dataset=c["dataset"]["name"], method=c["method"])
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:,.0f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    a = ap.parse_args()
    df = read_benchmarks(a.results)
    if df.empty:
        print(f"no benchmark files under {a.results}/benchmarks", file=sys.stderr)
        return 1
    out = [f"# Measured cost of `{a.results}`", "",
           f"From {len(df)} Snakemake benchmark files ({os.cpu_count()}-core machine that summed them). "
           "CPU seconds: user + system of each job; wall: its elapsed time (jobs ran side by side).", "",
           "## Per rule", "",
           _fmt(df.groupby("rule").agg(jobs=("job", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"))
                .reset_index().assign(jobs=lambda d: d["jobs"].astype(str)))]
    train = df[df["rule"] == "train"].dropna(subset=["dataset"]) if "dataset" in df else df.iloc[:0]
    if not train.empty:
        out += ["", "## Engine runs per dataset and method", "",
                _fmt(train.groupby(["dataset", "method"]).agg(runs=("job", "size"), cpu_s=("cpu_s", "sum"),
                                                             cpu_s_per_run=("cpu_s", "mean"),
                                                             max_rss_mb=("max_rss_mb", "max"))
                     .reset_index().assign(runs=lambda d: d["runs"].astype(str)))]
        out += ["", f"Engine runs: {len(train)}, {train['cpu_s'].sum() / 3600:.2f} CPU-hours in all."]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
