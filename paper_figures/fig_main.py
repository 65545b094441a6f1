"""Baseline curves: accuracy against virtual time, one panel per dataset and split at high heterogeneity
(reference §9.4 `plt_photo_acc`; each run on its own simulated time axis, B17).

Usage:
    python paper_figures/fig_main.py --table results/tables/main.parquet --out results/figures/fig_main
"""

import sys

import curves

TITLE = "Accuracy against virtual time (main comparison, high heterogeneity)"

if __name__ == "__main__":
    sys.exit(curves.main(sys.argv[1:], TITLE, ["dataset", "split", "heterogeneity"],
                         prefer_setting={"heterogeneity": "high"}, density=False))
