"""Accuracy against patience (non-IID high): ours with the paper's metric (seed mean, error bars = combined
window and seed spread) beside the paper's numbers (CIFAR-10 from the notebook, reference App. A.5; others read
off the paper's patience figure). Panels whose runs used stand-in data carry no paper curve: a FEMNIST number
drawn over Fashion-MNIST points would compare nothing.

Usage:
    python paper_figures/fig_patience.py --table results/tables/patience.parquet --out results/figures/fig_patience
"""

import sys

import numpy as np
import style
from common import compare, dataset_title, parse_args, read_reference, read_table, reference_tables

TITLE = "Accuracy at the time budget against patience (non-IID, high)"
REFERENCE = ["patience"]


def main(argv=None) -> int:
    a = parse_args(TITLE, argv)
    ref = read_reference(a.reference, reference_tables(a, REFERENCE))
    comp = compare(read_table(a.table), ref)
    groups = list(comp.groupby("dataset", sort=False)) if not comp.empty else []
    fig, axes = style.panels(len(groups))
    if not groups:
        style.empty(axes[0])
    for ax, (dataset, sub) in zip(axes, groups):
        sub = sub.sort_values("patience")
        err = np.sqrt(sub["window_std"] ** 2 + sub["seed_std"] ** 2)
        ax.errorbar(sub["patience"], sub["value"], yerr=err, marker="o", ms=3, lw=1, capsize=2, label="ours")
        engine = str(sub["engine_dataset"].iloc[0])
        paper = ref[(ref["dataset"] == dataset) & ref["method_label"].str.startswith("FedGMR P=")].copy()
        if not paper.empty and engine == dataset:
            paper["patience"] = paper["method_label"].str.split("=").str[1].astype(int)
            paper = paper.sort_values("patience")
            ax.plot(paper["patience"], paper["paper"], marker="s", ms=3, lw=1, ls="--", color="grey",
                    label="paper")
        ax.set_xscale("log")
        ax.set_xlabel("patience P (ticks)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(dataset_title(dataset, engine))
        ax.legend()
    fig.suptitle(TITLE)
    style.save(fig, a.out)
    print(f"{a.out}.pdf/.png: {len(groups)} panels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
