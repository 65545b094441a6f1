"""Restoration trigger: early stopping vs fixed schedule (reference App. A.4): ours vs the paper.

Reads the tidy table only; writes <out>.md, <out>.tex and <out>.csv (read by the report).
Usage:
    python paper_figures/table_trigger.py --table results/tables/<experiment>.parquet --out results/tables/table_trigger
"""

import sys

from common import table_main

TITLE = "Restoration trigger: early stopping vs fixed schedule (reference App. A.4)"
REFERENCE = ["trigger"]
LABELS = ["GMR (ES)", "GMR (Fixed)", "w/o Asyn", "w/o GMR"]

if __name__ == "__main__":
    sys.exit(table_main(sys.argv[1:], TITLE, REFERENCE, LABELS))
