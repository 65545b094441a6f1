"""Accuracy-against-virtual-time figures, optionally with the average density on a second axis
(reference §9.4: ablation, fixed restoration and cross-method figures)."""

from __future__ import annotations

import metrics as M
import pandas as pd
import style
from common import DATASET_NAMES, SPLIT_NAMES, parse_args, read_table


def panel_title(key: dict) -> str:
    parts = []
    if "dataset" in key:
        parts.append(DATASET_NAMES.get(key["dataset"], key["dataset"]))
    if "split" in key:
        parts.append(SPLIT_NAMES.get(key["split"], key["split"]))
    if "heterogeneity" in key:
        parts.append(key["heterogeneity"])
    for k, v in key.items():
        if k not in ("dataset", "split", "heterogeneity"):
            parts.append(str(v))
    return " ".join(parts)


def prefer(table: pd.DataFrame, **wanted) -> pd.DataFrame:
    """Keep rows matching `wanted` (e.g. split=noniid, heterogeneity=high) if there are any."""
    sub = table
    for key, value in wanted.items():
        if (sub[key] == value).any():
            sub = sub[sub[key] == value]
    return sub


def plot_curves(table: pd.DataFrame, out, panel_by: list[str], title: str, density: bool = True,
                smooth: int = 1, semantics: str = "released") -> int:
    """One panel per `panel_by` group; acc (left, solid) and density (right, dashed) per method label."""
    if "semantics" in table and (table["semantics"] == semantics).any():
        table = table[table["semantics"] == semantics]
    groups = list(table.groupby(panel_by, sort=False)) if not table.empty else []
    fig, axes = style.panels(len(groups))
    colors = style.color_map(table["method_label"]) if not table.empty else {}
    unit, xlabel = style.time_axis(float(table["virtual_time"].max()) if not table.empty else 0.0)
    if not groups:
        style.empty(axes[0])
    for ax, (key, sub) in zip(axes, groups):
        key = dict(zip(panel_by, key if isinstance(key, tuple) else (key,)))
        cur = M.curves(sub, ["method_label"])
        ax2 = ax.twinx() if density else None
        for label, c in cur.groupby("method_label", sort=False):
            t = M.moving_average(c["virtual_time"], smooth) / unit
            ax.plot(t, M.moving_average(c["acc"], smooth) * 100, color=colors[label], label=label, lw=1.2)
            if ax2 is not None:
                ax2.plot(t, c["avg_density"], color=colors[label], ls="--", lw=0.9, alpha=0.7)
        budget = float(sub["budget"].iloc[0])
        ax.axvline(budget / unit, color="grey", ls=":", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        if ax2 is not None:
            ax2.set_ylabel("average density (dashed)")
            ax2.set_ylim(0, 1.05)
            ax2.grid(False)
        ax.set_title(panel_title(key))
        ax.legend(loc="lower right")
    fig.suptitle(title)
    style.save(fig, out)
    return len(groups)


def main(argv, title: str, panel_by: list[str], prefer_setting: dict | None = None, density: bool = True,
         smooth: int = 1) -> int:
    a = parse_args(title, argv)
    table = read_table(a.table)
    if prefer_setting and not table.empty:
        table = prefer(table, **prefer_setting)
    n = plot_curves(table, a.out, panel_by, title, density=density, smooth=smooth)
    print(f"{a.out}.pdf/.png: {n} panels")
    return 0
