"""The reproduction report: every paper table, ours vs the paper with a verdict per cell, the cells that
were not run, the deviations (released vs clean semantics) and links to the figures.

Reads only the comparison tables written by the table scripts (``<results>/tables/table_*.csv``) and the
cells lists (``<results>/tables/<experiment>.cells.csv``).

Usage:
    python paper_figures/report.py --results results --tables results/tables/table_*.csv \
        --cells results/tables/*.cells.csv --figures results/figures/*.png --out results/report.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
from common import fmt, markdown_table, setting_name, stand_in_note

TITLES = {
    "table_main": "Main comparison",
    "table_ablation": "Ablation",
    "table_aggregation": "Aggregation rules",
    "table_trigger": "Restoration trigger (early stopping vs fixed schedule)",
    "table_cross_method": "GMR on other methods",
    "table_patience": "Patience sweep",
}


SUMMARY_COLUMNS = ["cells", "within spread", "outside spread", "no paper value", "not compared"]


def verdict_counts(comp: pd.DataFrame) -> dict:
    v = comp["verdict"].fillna("")
    return {"cells": len(comp), "within spread": int(v.str.startswith("within").sum()),
            "outside spread": int(v.str.startswith("outside").sum()),
            "no paper value": int((v == "no paper value").sum()),
            "not compared": int(v.str.startswith("not compared").sum())}


def table_section(name: str, comp: pd.DataFrame) -> list[str]:
    lines = [f"## {TITLES.get(name, name)} (`{name}`)", ""]
    if comp.empty:
        return lines + ["_No cell of this table was run._", ""]
    header = ["setting", "method", "ours", "seeds", "paper", "Δ", "verdict"]
    rows = [[setting_name(r), r["method_label"], fmt(r["value"], r["window_std"]), str(int(r["n_seeds"])),
             fmt(r["paper"], r["paper_std"]), fmt(r["delta"]), r["verdict"]] for _, r in comp.iterrows()]
    return lines + [markdown_table(rows, header), ""]


def deviations_section(comp: pd.DataFrame) -> list[str]:
    lines = ["## Deviations: released vs clean semantics (`table_semantics`)", "",
             ("`released` reproduces the authors' code (the paper's tables come from it); `clean` is what the "
             "paper describes (design §4, reference §10). The difference is what the code's quirks do."), ""]
    if comp.empty:
        return lines + ["_Not run._", ""]
    keys = ["dataset", "split", "heterogeneity", "method_label"]
    rel = comp[comp["semantics"] == "released"].set_index(keys)
    cln = comp[comp["semantics"] == "clean"].set_index(keys)
    rows = []
    for key in dict.fromkeys(list(rel.index) + list(cln.index)):
        r = rel.loc[key] if key in rel.index else None
        c = cln.loc[key] if key in cln.index else None
        setting = setting_name(dict(zip(keys, key)))
        rv = None if r is None else r["value"]
        cv = None if c is None else c["value"]
        diff = None if rv is None or cv is None else cv - rv
        paper = (r if r is not None else c)["paper"]
        rows.append([setting, key[3], fmt(rv, None if r is None else r["window_std"]),
                     fmt(cv, None if c is None else c["window_std"]), fmt(diff), fmt(paper)])
    header = ["setting", "method", "released", "clean", "clean − released", "paper"]
    return lines + [markdown_table(rows, header), ""]


def not_run_section(cells: list[Path]) -> list[str]:
    frames = [pd.read_csv(p) for p in cells if Path(p).is_file()]
    lines = ["## Cells not run", ""]
    if not frames:
        return lines + ["_No cells lists found._", ""]
    allc = pd.concat(frames, ignore_index=True)
    missing = allc[allc["status"] != "run"]
    if missing.empty:
        return lines + ["Every cell of every active grid was run.", ""]
    grouped = (missing.groupby(["experiment", "method_label", "method", "reason"], dropna=False)
               .size().reset_index(name="cells"))
    rows = [[r.experiment, r.method_label, f"`{r.method}`", str(r.cells), r.reason] for r in grouped.itertuples()]
    lines += [f"{len(missing)} of {len(allc)} cells were not run:", "",
              markdown_table(rows, ["experiment", "method", "engine name", "cells", "reason"]), ""]
    detail = missing.copy()
    detail["setting"] = [setting_name(r) for _, r in detail.iterrows()]
    rows = [[r.experiment, r.setting, r.method_label, str(r.seed), r.semantics] for r in detail.itertuples()]
    lines += ["<details><summary>every cell not run</summary>", "",
              markdown_table(rows, ["experiment", "setting", "method", "seed", "semantics"]), "", "</details>", ""]
    return lines


def build(results: str, tables: list[Path], cells: list[Path], figures: list[Path], out: Path) -> str:
    comps = {Path(t).stem: pd.read_csv(t) for t in tables}
    lines = ["# FedGMR reproduction report", "",
             (f"Results root: `{results}`. Accuracy (%) with the paper's metric (reference §9.3): mean ± std over "
             "the 20 evaluations around the first evaluation after the time budget, averaged over seeds. "
             "Verdict per cell: *within spread* when |ours − paper| ≤ 2σ with σ² = window std² + "
             "std across seeds² + paper std²; otherwise *outside spread*."), ""]
    nonempty = [c for c in comps.values() if not c.empty]
    note = stand_in_note(pd.concat(nonempty, ignore_index=True)) if nonempty else ""
    lines += [f"> {note}", ""] if note else []
    summary = []
    for name, comp in comps.items():
        counts = verdict_counts(comp)
        summary.append([f"`{name}`", *(str(counts[k]) for k in SUMMARY_COLUMNS)])
    lines += ["## Summary", "", markdown_table(summary, ["table", *SUMMARY_COLUMNS]), ""]
    for name, comp in comps.items():
        if name == "table_semantics":
            continue
        lines += table_section(name, comp)
    if "table_semantics" in comps:
        lines += deviations_section(comps["table_semantics"])
    lines += not_run_section(cells)
    if figures:
        lines += ["## Figures", ""]
        for fig in figures:
            rel = os.path.relpath(fig, Path(out).parent)
            lines += [f"- `{Path(fig).stem}`: [{rel}]({rel}) (PDF beside it)"]
        lines += [""]
    text = "\n".join(lines)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results")
    p.add_argument("--tables", nargs="*", type=Path, default=[])
    p.add_argument("--cells", nargs="*", type=Path, default=[])
    p.add_argument("--figures", nargs="*", type=Path, default=[])
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    build(a.results, a.tables, a.cells, a.figures, a.out)
    print(f"report: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
