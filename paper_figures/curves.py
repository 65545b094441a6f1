"""Accuracy-against-virtual-time figures, optionally with the average density on a second axis
(reference §9.4: ablation, fixed restoration and cross-method figures)."""

from __future__ import annotations

import metrics as M
import pandas as pd
import style
from common import SPLIT_NAMES, dataset_title, parse_args, read_table
from matplotlib.lines import Line2D


def panel_title(key: dict, sub: pd.DataFrame | None = None) -> str:
    """Panel title from its group key; the dataset says when the engine ran a stand-in ("fmnist, stand-in for
    FEMNIST"), and is added from the data when the panels are not split by dataset."""
    parts = []
    engines = {}
    if sub is not None and not sub.empty:
        engines = dict(zip(sub["dataset"], sub["engine_dataset"]))
    if "dataset" in key:
        parts.append(dataset_title(key["dataset"], engines.get(key["dataset"])))
    if "split" in key:
        parts.append(SPLIT_NAMES.get(key["split"], key["split"]))
    if "heterogeneity" in key:
        parts.append(key["heterogeneity"])
    for k, v in key.items():
        if k not in ("dataset", "split", "heterogeneity"):
            parts.append(str(v))
    if "dataset" not in key and len(engines) == 1:
        (dataset, engine), = engines.items()
        parts.append(f"({dataset_title(dataset, engine)})")
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
    """One panel per `panel_by` group; acc (left, solid) and density (right, dashed) per method label.

    `smooth` is the moving-average length of the paper's figures (reference §9.4), shrunk for runs with few
    evaluations (metrics.smoothing_for) so that a short run is not averaged into one point; the figure says so.
    """
    if "semantics" in table and (table["semantics"] == semantics).any():
        table = table[table["semantics"] == semantics]
    groups = list(table.groupby(panel_by, sort=False)) if not table.empty else []
    fig, axes = style.panels(len(groups))
    colors = style.color_map(table["method_label"]) if not table.empty else {}
    unit, xlabel = style.time_axis(float(table["virtual_time"].max()) if not table.empty else 0.0)
    if not groups:
        style.empty(axes[0])
    used = set()
    for ax, (key, sub) in zip(axes, groups):
        key = dict(zip(panel_by, key if isinstance(key, tuple) else (key,)))
        cur = M.curves(sub, ["method_label"])
        ax2 = ax.twinx() if density else None
        for label, c in cur.groupby("method_label", sort=False):
            k = M.smoothing_for(len(c), smooth)
            used.add(k)
            t = M.moving_average(c["virtual_time"], k) / unit
            ax.plot(t, M.moving_average(c["acc"], k) * 100, color=colors[label], label=label, lw=1.2)
            if ax2 is not None:
                ax2.plot(t, c["avg_density"], color=colors[label], ls="--", lw=0.9, alpha=0.7)
        budget = float(sub["budget"].iloc[0])
        ax.axvline(budget / unit, color="grey", ls=":", lw=0.8)
        handles, _ = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], color="grey", ls=":", lw=0.8, label=f"budget T = {budget:,.0f} s"))
        if ax2 is not None:
            handles.append(Line2D([], [], color="black", ls="--", lw=0.9, label="average density (right axis)"))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        if ax2 is not None:
            ax2.set_ylabel("average density (dashed)")
            ax2.set_ylim(0, 1.05)
            ax2.grid(False)
        ax.set_title(panel_title(key, sub))
        ax.legend(handles=handles, loc="lower right")
    smoothed = sorted(k for k in used if k > 1)
    if smoothed:
        title += f"\n(accuracy and time: moving average over {'/'.join(map(str, smoothed))} evaluations)"
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
