"""The reproduction report: the paper's claims tested on our runs, every paper table (ours vs the paper with a
verdict and health flags per cell), the deviations (released vs clean semantics), the scope of what was run,
the cells that were not run and links to the figures.

Reads only the comparison tables written by the table scripts (``<results>/tables/table_*.csv``), the claims
table (``claims.py``), the cells lists (``<results>/tables/<experiment>.cells.csv``), the scope of the run
(``<results>/scope.json``, written by the workflow), the paper's numbers and the Snakemake benchmark files
under ``<results>/benchmarks/``.

Usage:
    python paper_figures/report.py --results results --tables results/tables/table_*.csv \
        --cells results/tables/*.cells.csv --figures results/figures/*.png --claims results/tables/claims.csv \
        --scope results/scope.json --reference paper_figures/reference/paper-results.csv --out results/report.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import claims as CL
import health
import pandas as pd
from common import (
    DEFAULT_REFERENCE,
    flags_text,
    fmt,
    markdown_table,
    setting_name,
    stand_in_note,
    window_note,
)

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
    header = ["setting", "method", "ours", "seeds", "± 95 % CI", "at end", "paper", "Δ", "verdict", "flags"]
    rows = [[setting_name(r), r["method_label"], fmt(r["value"], r["window_std"]), str(int(r["n_seeds"])),
             fmt(r.get("seed_ci")), fmt(r.get("acc_end")), fmt(r["paper"], r["paper_std"]), fmt(r["delta"]),
             r["verdict"], flags_text(r.get("flags"))] for _, r in comp.iterrows()]
    note = window_note(comp)
    return lines + ([note, ""] if note else []) + [markdown_table(rows, header), ""]


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
        return lines + ["Every cell kept by the grids' `subset` was run (the Scope section lists what the subset "
                        "dropped).", ""]
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


def claims_section(claims_csv: Path | None) -> list[str]:
    lines = ["## Claims", ""]
    if claims_csv is None or not Path(claims_csv).is_file():
        return lines + ["_No claims table (paper_figures/claims.py) was given._", ""]
    return lines + [CL.markdown(CL.read_result(claims_csv))]


def health_section(comps: dict[str, pd.DataFrame]) -> list[str]:
    lines = ["## Health of the cells", "",
             ("Flags in the tables above: *at chance*: accuracy at the end ≤ chance + "
              f"{health.CHANCE_MARGIN:g} points (1/classes; 5/vocabulary for top-5 next-token accuracy); "
              "*loss not decreasing*: the server loss over the last quarter of the evaluations is not below the "
              "first; *budget not reached*: a run ended before T, so its value is read at its last evaluation; "
              "*identical to X*: the accuracy curves equal X's for every seed (released FedRolex is HeteroFL on "
              "FEMNIST and CIFAR-10 by construction, reference B11). A flagged cell's verdict says little about "
              "the method."), ""]
    rows = []
    for name, comp in comps.items():
        if comp.empty or "flags" not in comp:
            continue
        flagged = comp[comp["flags"].fillna("") != ""]
        for _, r in flagged.iterrows():
            rows.append([f"`{name}`", setting_name(r), r["method_label"], r.get("semantics", ""), r["flags"]])
    if not rows:
        return lines + ["No cell is flagged.", ""]
    return lines + [markdown_table(rows, ["table", "setting", "method", "semantics", "flags"]), ""]


def _paper_cells(reference: pd.DataFrame, tables: list[str]) -> pd.DataFrame:
    ref = reference[reference["table"].isin(tables) & reference["value"].notna()]
    return ref.drop_duplicates(["dataset", "split", "heterogeneity", "method"])


def compute_hours(results: str) -> tuple[float, float, int]:
    """(wall hours, CPU hours, jobs) summed over the Snakemake benchmark files of the engine runs."""
    wall = cpu = 0.0
    files = sorted(Path(results, "benchmarks", "train").glob("*.tsv"))
    for f in files:
        b = pd.read_csv(f, sep="\t")
        wall += float(pd.to_numeric(b.get("s"), errors="coerce").fillna(0).sum())
        if "cpu_time" in b:
            cpu += float(pd.to_numeric(b["cpu_time"], errors="coerce").fillna(0).sum())
    return wall / 3600, cpu / 3600, len(files)


def scope_section(results: str, comps: dict[str, pd.DataFrame], scope: dict, reference: pd.DataFrame) -> list[str]:
    lines = ["## Scope", ""]
    exps = scope.get("experiments", {})
    rows = []
    for name, info in exps.items():
        tabs = [o for o in info.get("outputs", []) if o.startswith("table_")] or [None]
        for out in tabs:
            comp = comps.get(out, pd.DataFrame()) if out else pd.DataFrame()
            paper = _paper_cells(reference, info.get("reference", []))
            computed = comp.drop_duplicates(["dataset", "split", "heterogeneity", "method_label"]) \
                if not comp.empty else comp
            compared = 0 if computed.empty else int(computed["delta"].notna().sum())
            dropped = info["grid_cells"] - info["kept_cells"]
            what = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.get("dropped_values", {}).items() if v)
            rows.append([f"`{out or name}`", str(len(paper)), str(len(computed)), str(compared),
                         str(info["grid_cells"]), f"{dropped}" + (f" ({what})" if what else ""),
                         json.dumps(info.get("subset") or {}, ensure_ascii=False)])
    header = ["output", "paper cells with a value", "cells computed", "compared with the paper",
              "grid cells (incl. seeds)", "dropped by `subset`", "subset in force"]
    lines += [("Per output: how many cells the paper gives a number for, how many we computed (settings × "
               "methods, seeds pooled), how many of those are compared with the paper's number (not stand-in "
               "data), and how many grid cells (settings × methods × seeds) the grid's `subset` left out, with "
               "the values it removed."), "",
              markdown_table(rows, header) if rows else "_No scope information (scope.json) was given._", ""]
    wall, cpu, jobs = compute_hours(results)
    facts = [f"- Compute: {wall:.2f} h wall time, {cpu:.2f} h CPU time over {jobs} engine jobs "
             f"(sum of `{results}/benchmarks/train/*.tsv`; runs done earlier and reused count once, when run)."]
    if scope:
        facts += [f"- Seeds: {scope.get('seeds')}; experiments: {', '.join(exps)}."]
        ds = scope.get("datasets", {})
        if ds:
            facts += ["- Datasets (paper → engine, budget T, overrides): " + "; ".join(
                f"{k} → {v['engine']}, T = {v['budget']:g} s"
                + (f", {json.dumps(v['overrides'], ensure_ascii=False)}" if v.get("overrides") else "")
                for k, v in ds.items())]
        facts += [f"- Run overrides in force: `{json.dumps(scope.get('run_overrides') or {}, ensure_ascii=False)}`"]
        facts += [f"- Git: {scope.get('git', 'unknown')}; versions: " + ", ".join(
            f"{k} {v}" for k, v in (scope.get("versions") or {}).items())]
    return lines + facts + [""]


def build(results: str, tables: list[Path], cells: list[Path], figures: list[Path], out: Path,
          claims_csv: Path | None = None, scope_json: Path | None = None,
          reference: Path = DEFAULT_REFERENCE) -> str:
    comps = {Path(t).stem: pd.read_csv(t) for t in tables}
    scope = json.loads(Path(scope_json).read_text()) if scope_json and Path(scope_json).is_file() else {}
    lines = ["# FedGMR reproduction report", "",
             (f"Results root: `{results}`. Accuracy (%) with the paper's metric (reference §9.3): mean ± std over "
             "the 20 evaluations around the first evaluation after the time budget (fewer for short runs, as "
             "noted per table), averaged over seeds; `± 95 % CI` is the Student-t interval of that mean over "
             "seeds, `at end` the seed-mean accuracy at the last evaluation. "
             "Verdict per cell: *within spread* when |ours − paper| ≤ 2σ with σ² = window std² + "
             "std across seeds² + paper std²; otherwise *outside spread*; Δ is – where nothing is compared."), ""]
    nonempty = [c for c in comps.values() if not c.empty]
    note = stand_in_note(pd.concat(nonempty, ignore_index=True)) if nonempty else ""
    lines += [f"> {note}", ""] if note else []
    summary = []
    for name, comp in comps.items():
        counts = verdict_counts(comp)
        summary.append([f"`{name}`", *(str(counts[k]) for k in SUMMARY_COLUMNS)])
    lines += ["## Summary", "", markdown_table(summary, ["table", *SUMMARY_COLUMNS]), ""]
    lines += claims_section(claims_csv)
    for name, comp in comps.items():
        if name == "table_semantics":
            continue
        lines += table_section(name, comp)
    if "table_semantics" in comps:
        lines += deviations_section(comps["table_semantics"])
    lines += health_section(comps)
    lines += scope_section(results, comps, scope, pd.read_csv(reference))
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
    p.add_argument("--claims", type=Path, default=None, help="claims table (paper_figures/claims.py)")
    p.add_argument("--scope", type=Path, default=None, help="scope.json written by the workflow")
    p.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="paper-results.csv")
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    build(a.results, a.tables, a.cells, a.figures, a.out, a.claims, a.scope, a.reference)
    print(f"report: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
