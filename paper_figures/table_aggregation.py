"""Aggregation rules with and without GMR (reference App. A.3): ours vs the paper.

Reads the tidy table only; writes <out>.md, <out>.tex and <out>.csv (read by the report).
Usage:
    python paper_figures/table_aggregation.py --table results/tables/<experiment>.parquet --out results/tables/table_aggregation
"""

import sys

from common import table_main

TITLE = "Aggregation rules with and without GMR (reference App. A.3)"
REFERENCE = ["aggregation_all_datasets", "aggregation"]
LABELS = ["GMR+MA", "GMR+GA", "GMR+FA", "GA", "FA"]

if __name__ == "__main__":
    sys.exit(table_main(sys.argv[1:], TITLE, REFERENCE, LABELS))
