"""Main comparison (README table; CIFAR-10 levels from the authors' notebook, reference App. A.1): ours vs the paper.

Reads the tidy table only; writes <out>.md, <out>.tex and <out>.csv (read by the report).
Usage:
    python paper_figures/table_main.py --table results/tables/<experiment>.parquet --out results/tables/table_main
"""

import sys

from common import table_main

TITLE = "Main comparison (README table; CIFAR-10 levels from the authors' notebook, reference App. A.1)"
REFERENCE = ["main", "main_all_levels"]
LABELS = ["FedGMR", "FedAvg", "FedAsync", "HeteroFL", "FedRolex", "FjORD", "FIARSE"]

if __name__ == "__main__":
    sys.exit(table_main(sys.argv[1:], TITLE, REFERENCE, LABELS))
