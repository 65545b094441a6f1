"""Patience sweep, non-IID high (reference App. A.5): ours vs the paper.

Reads the tidy table only; writes <out>.md, <out>.tex and <out>.csv (read by the report).
Usage:
    python paper_figures/table_patience.py --table results/tables/<experiment>.parquet --out results/tables/table_patience
"""

import sys

from common import table_main

TITLE = "Patience sweep, non-IID high (reference App. A.5)"
REFERENCE = ["patience"]
LABELS = None

if __name__ == "__main__":
    sys.exit(table_main(sys.argv[1:], TITLE, REFERENCE, LABELS))
