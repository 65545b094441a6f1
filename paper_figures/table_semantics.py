"""Deviations table: the same cells under `released` (the authors' code) and `clean` (the paper's
description) semantics, with the difference and the paper's number (design §4, reference §10).

Reads the tidy table of the `semantics` experiment only; writes <out>.md, <out>.tex and <out>.csv.
Usage:
    python paper_figures/table_semantics.py --table results/tables/semantics.parquet --out results/tables/table_semantics
"""

import sys

import pandas as pd
from common import (
    compare,
    fmt,
    order,
    parse_args,
    read_reference,
    read_table,
    reference_tables,
    setting_name,
    write_comparison,
)

TITLE = "Deviations: released vs clean semantics"
REFERENCE = ["main", "main_all_levels"]
KEYS = ["dataset", "engine_dataset", "split", "heterogeneity", "method_label", "method", "patience", "budget"]


def deviations(comp: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: released and clean values side by side, clean - released."""
    cols = ["value", "window_std", "seed_std", "n_seeds"]
    rel = comp[comp["semantics"] == "released"].set_index(KEYS)[cols + ["paper", "paper_std", "verdict"]]
    cln = comp[comp["semantics"] == "clean"].set_index(KEYS)[cols]
    out = rel.join(cln, how="outer", lsuffix="_released", rsuffix="_clean").reset_index()
    out["clean_minus_released"] = out["value_clean"] - out["value_released"]
    return out


def main(argv=None) -> int:
    a = parse_args(TITLE, argv)
    comp = order(compare(read_table(a.table), read_reference(a.reference, reference_tables(a, REFERENCE))))
    dev = deviations(comp)
    header = ["setting", "method", "released", "clean", "clean − released", "paper", "verdict (released)"]
    rows = [[setting_name(r), r["method_label"], fmt(r["value_released"], r["window_std_released"]),
             fmt(r["value_clean"], r["window_std_clean"]), fmt(r["clean_minus_released"]),
             fmt(r["paper"], r["paper_std"]), r["verdict"] if isinstance(r["verdict"], str) else "–"]
            for _, r in dev.iterrows()]
    write_comparison(comp, a.out, TITLE, a.cells, header_rows=(header, rows))
    print(f"{a.out}.md: {len(dev)} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
