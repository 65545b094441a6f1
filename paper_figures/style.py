"""Plot style shared by the figure scripts, and saving a figure as PDF and PNG."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#393b79", "#637939"]
RC = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 7, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100, "savefig.dpi": 200,
    "pdf.fonttype": 42,
}


def panels(n: int, width: float = 3.2, height: float = 2.5, max_cols: int = 4):
    """A figure with n panels (at least one), returned as (fig, flat list of axes)."""
    plt.rcParams.update(RC)
    n = max(n, 1)
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(width * cols, 6.0), height * rows + 0.4), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def color_map(labels) -> dict:
    return {label: COLORS[i % len(COLORS)] for i, label in enumerate(dict.fromkeys(labels))}


def empty(ax, message: str = "no runs in the table") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def time_axis(seconds_max: float) -> tuple[float, str]:
    """(divisor, label) for a virtual-time axis: 10^4 s at the paper's scale, seconds below it."""
    if seconds_max >= 2e4:
        return 1e4, "virtual time (10⁴ s)"
    return 1.0, "virtual time (s)"


def save(fig, stem: Path) -> None:
    """Write <stem>.pdf and <stem>.png."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".pdf"))
    fig.savefig(stem.with_suffix(".png"))
    plt.close(fig)
