"""Motivation: accuracy growth rate against accuracy at fixed densities. Every client trains the same
density; for each density the seed-mean accuracy curve is smoothed, and its growth rate
ΔAcc/ΔTime (percentage points per 1,000 s of virtual time) is plotted against the accuracy reached.
Small models grow fast early and stall at low accuracy; large ones grow slowly but reach more.

Usage:
    python paper_figures/fig_motivation.py --table results/tables/motivation.parquet \
        --out results/figures/fig_motivation
"""

import sys

import metrics as M
import numpy as np
import pandas as pd
import style
from common import dataset_title, parse_args, read_table

TITLE = "Accuracy growth rate against accuracy at fixed densities"
SMOOTH = 5


def growth(curve: pd.DataFrame, smooth: int = SMOOTH) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy %, growth rate in points per 1,000 s) between consecutive evaluations; the moving average is
    shrunk for runs with few evaluations (metrics.smoothing_for)."""
    t = curve["virtual_time"].to_numpy(dtype=float)
    acc = M.moving_average(curve["acc"].to_numpy(dtype=float) * 100, M.smoothing_for(len(curve), smooth))
    dt = np.diff(t)
    ok = dt > 0
    rate = np.diff(acc)[ok] / dt[ok] * 1e3
    mid = ((acc[1:] + acc[:-1]) / 2)[ok]
    return mid, rate


def main(argv=None) -> int:
    a = parse_args(TITLE, argv)
    table = read_table(a.table)
    groups = list(table.groupby("dataset", sort=False)) if not table.empty else []
    fig, axes = style.panels(len(groups))
    if not groups:
        style.empty(axes[0])
    for ax, (dataset, sub) in zip(axes, groups):
        cur = M.curves(sub, ["fixed_density"])
        densities = sorted(cur["fixed_density"].dropna().unique())
        colors = style.color_map(densities)
        for d in densities:
            x, y = growth(cur[cur["fixed_density"] == d])
            ax.plot(x, y, marker=".", ms=3, lw=1, color=colors[d], label=f"ρ = {d:g}")
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel("accuracy (%)")
        ax.set_ylabel("ΔAcc/ΔTime (pts per 10³ s)")
        ax.set_title(dataset_title(dataset, str(sub["engine_dataset"].iloc[0])))
        ax.legend()
    n_min = int(table.groupby(["dataset", "fixed_density", "seed"]).size().min()) if not table.empty else 0
    k = M.smoothing_for(n_min, SMOOTH)
    fig.suptitle(TITLE + (f"\n(accuracy: moving average over {k} evaluations)" if k > 1 else ""))
    style.save(fig, a.out)
    print(f"{a.out}.pdf/.png: {len(groups)} panels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
