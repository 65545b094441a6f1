"""Ablation curves: accuracy (moving average of 20 evaluations, reference §9.4 cov=True) and average
density on a second axis against virtual time, one panel per dataset, non-IID high.

Usage:
    python paper_figures/fig_ablation.py --table results/tables/ablation.parquet --out results/figures/fig_ablation
"""

import sys

import curves

TITLE = "Ablation: accuracy and average density against virtual time (non-IID, high)"

if __name__ == "__main__":
    sys.exit(curves.main(sys.argv[1:], TITLE, ["dataset", "split", "heterogeneity"],
                         prefer_setting={"split": "noniid", "heterogeneity": "high"}, smooth=20))
