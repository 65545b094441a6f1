"""Ablation of FedGMR's components (reference App. A.2): ours vs the paper.

Reads the tidy table only; writes <out>.md, <out>.tex and <out>.csv (read by the report).
Usage:
    python paper_figures/table_ablation.py --table results/tables/<experiment>.parquet --out results/tables/table_ablation
"""

import sys

from common import table_main

TITLE = "Ablation of FedGMR's components (reference App. A.2)"
REFERENCE = ["ablation"]
LABELS = ["FedGMR", "w/o Asyn", "w/o GMR", "w/o Buff", "w/o IMS", "w/o (Buff, IMS)"]

if __name__ == "__main__":
    sys.exit(table_main(sys.argv[1:], TITLE, REFERENCE, LABELS))
