"""GMR on other methods: accuracy and average density against virtual time, one panel per base method
(base, +Aux, +Aux+GMR; FEMNIST non-IID high, reference §1.6).

Usage:
    python paper_figures/fig_cross_method.py --table results/tables/cross_method.parquet \
        --out results/figures/fig_cross_method
"""

import sys

import curves

TITLE = "GMR on other methods: accuracy and average density against virtual time"

if __name__ == "__main__":
    sys.exit(curves.main(sys.argv[1:], TITLE, ["family"]))
