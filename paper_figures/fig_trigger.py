"""Fixed-time vs early-stopping restoration: accuracy and average density against virtual time, one panel
per dataset (non-IID high; reference §5 time-triggered GMR, App. A.4).

Usage:
    python paper_figures/fig_trigger.py --table results/tables/trigger.parquet --out results/figures/fig_trigger
"""

import sys

import curves

TITLE = "Restoration trigger: accuracy and average density against virtual time"

if __name__ == "__main__":
    sys.exit(curves.main(sys.argv[1:], TITLE, ["dataset", "split", "heterogeneity"],
                         prefer_setting={"split": "noniid", "heterogeneity": "high"}))
