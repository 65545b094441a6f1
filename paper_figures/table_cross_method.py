"""GMR on other model-heterogeneous methods, FEMNIST non-IID high (reference §1.6): ours vs the paper.

Reads the tidy table only; writes <out>.md, <out>.tex and <out>.csv (read by the report).
Usage:
    python paper_figures/table_cross_method.py --table results/tables/<experiment>.parquet --out results/tables/table_cross_method
"""

import sys

from common import table_main

TITLE = "GMR on other model-heterogeneous methods, FEMNIST non-IID high (reference §1.6)"
REFERENCE = ["cross_method"]
LABELS = None

if __name__ == "__main__":
    sys.exit(table_main(sys.argv[1:], TITLE, REFERENCE, LABELS))
