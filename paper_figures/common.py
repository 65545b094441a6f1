"""Shared parts of the table and figure scripts: command line, reading tables, the paper's numbers,
ours-vs-paper comparison and its Markdown / LaTeX rendering.

Every script reads only the tidy tables (``results/tables/<experiment>.parquet`` and ``.cells.csv``) and
the reference numbers, never a run directory and never ``fedgmr``:

    python paper_figures/<id>.py --table T.parquet --cells T.cells.csv \
        --reference paper_figures/reference/paper-results.csv --out results/figures/<id>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import health
import metrics as M
import pandas as pd

HERE = Path(__file__).resolve().parent
DEFAULT_REFERENCE = HERE / "reference" / "paper-results.csv"
DATASET_NAMES = {"femnist": "FEMNIST", "cifar10": "CIFAR-10", "imagenet100": "ImageNet100",
                 "stackoverflow": "StackOverflow"}
SPLIT_NAMES = {"iid": "IID", "noniid": "non-IID"}
SETTING_KEYS = ["dataset", "split", "heterogeneity"]
COMPARISON_COLUMNS = [
    "experiment", "dataset", "engine_dataset", "split", "heterogeneity", "method_label", "method", "semantics",
    "patience", "fixed_density", "budget", "value", "window_std", "seed_std", "seed_ci", "n_seeds",
    "acc_at_budget", "acc_end", "reached", "final_density", "n_evals", "half_window", "paper", "paper_std",
    "paper_source", "delta", "sigma", "verdict", "flags",
]


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--table", required=True, type=Path, help="tidy table <experiment>.parquet")
    p.add_argument("--cells", type=Path, default=None, help="<experiment>.cells.csv (cells run or not)")
    p.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="paper-results.csv")
    p.add_argument("--reference-tables", default=None,
                   help="comma-separated `table` values of the reference file to compare with, first match wins")
    p.add_argument("--out", required=True, type=Path, help="output path without extension")
    return p.parse_args(argv)


def reference_tables(args: argparse.Namespace, default: list[str]) -> list[str]:
    if args.reference_tables is None:
        return default
    return [t for t in args.reference_tables.split(",") if t]


def read_table(path: Path) -> pd.DataFrame:
    table = pd.read_parquet(path)
    missing = {"dataset", "split", "heterogeneity", "method_label", "seed", "tick", "virtual_time", "acc",
               "avg_density", "budget"} - set(table.columns)
    if missing:
        raise SystemExit(f"{path}: not a tidy table (missing {sorted(missing)})")
    return table


def read_reference(path: Path, tables: list[str]) -> pd.DataFrame:
    """Paper numbers of the given reference tables; the first table listing a cell wins."""
    ref = pd.read_csv(path)
    ref = ref[ref["table"].isin(tables)].copy()
    ref["_rank"] = ref["table"].map({t: i for i, t in enumerate(tables)})
    ref = ref.sort_values("_rank").drop_duplicates(SETTING_KEYS + ["method"], keep="first")
    ref = ref.rename(columns={"method": "method_label", "value": "paper", "std": "paper_std",
                              "source": "paper_source"})
    return ref[SETTING_KEYS + ["method_label", "paper", "paper_std", "paper_source", "table"]]


def compare(table: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Our paper-metric value per cell (seed mean) beside the paper's, with delta, spread and verdict."""
    per_run = M.run_values(table)
    summary = M.seed_summary(per_run)
    out = summary.merge(reference.drop(columns=["table"]), on=SETTING_KEYS + ["method_label"], how="left")
    stand_in = out["engine_dataset"] != out["dataset"]
    # A stand-in cell is not compared with the paper: no Δ (rendered "–"), and the verdict says why.
    out["delta"] = (out["value"] - out["paper"]).where(~stand_in)
    out["sigma"] = [M.spread(w, s, p) for w, s, p in zip(out["window_std"], out["seed_std"], out["paper_std"])]
    out["verdict"] = [
        f"not compared: stand-in data ({e})" if si and pd.notna(p) else M.verdict(v, p, s, r)
        for v, p, s, r, si, e in zip(out["value"], out["paper"], out["sigma"], out["reached"], stand_in,
                                     out["engine_dataset"])]
    flags = health.cell_flags(table, per_run)
    out = out.merge(flags, on=M.CELL_KEYS, how="left") if not out.empty else out.assign(flags="")
    out["flags"] = out["flags"].fillna("")
    return out.reindex(columns=COMPARISON_COLUMNS)


def order(df: pd.DataFrame, label_order: list[str] | None = None) -> pd.DataFrame:
    """Paper order: dataset, split, heterogeneity, then method labels as they first appear."""
    ds = {d: i for i, d in enumerate(DATASET_NAMES)}
    het = {"high": 0, "medium": 1, "low": 2}
    labels = {m: i for i, m in enumerate(label_order or list(dict.fromkeys(df["method_label"])))}
    key = pd.DataFrame({
        "d": df["dataset"].map(ds), "s": df["split"].map({"iid": 0, "noniid": 1}),
        "h": df["heterogeneity"].map(het), "m": df["method_label"].map(labels),
        "p": df["patience"], "sem": df["semantics"],
    }, index=df.index)
    return df.loc[key.sort_values(["d", "s", "h", "m", "p", "sem"]).index]


def dataset_title(dataset: str, engine: str | None = None) -> str:
    """The paper's dataset name, or "<engine>, stand-in for <paper name>" when the engine ran a stand-in."""
    name = DATASET_NAMES.get(dataset, dataset)
    return f"{engine}, stand-in for {name}" if engine and engine != dataset else name


def setting_name(row) -> str:
    return (f"{DATASET_NAMES.get(row['dataset'], row['dataset'])} {SPLIT_NAMES.get(row['split'], row['split'])} "
            f"{row['heterogeneity']}")


def fmt(value, std=None, digits: int = 2) -> str:
    if value is None or pd.isna(value):
        return "–"
    if std is None or pd.isna(std):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {std:.{digits}f}"


def stand_in_note(df: pd.DataFrame) -> str:
    pairs = sorted({(d, e) for d, e in zip(df["dataset"], df["engine_dataset"]) if d != e})
    if not pairs:
        return ""
    used = ", ".join(f"{DATASET_NAMES.get(d, d)} → {e}" for d, e in pairs)
    return (f"Stand-in data ({used}): our numbers come from the offline demo data and small models, so the "
            "comparison with the paper only exercises the pipeline.")


def markdown_table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("σ", r"$\sigma$"), ("≤", r"$\le$"), ("→", r"$\to$")):
        text = text.replace(a, b)
    return text


def latex_table(rows: list[list[str]], header: list[str], caption: str) -> str:
    body = [" & ".join(latex_escape(str(c)) for c in r) + r" \\" for r in rows]
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{latex_escape(caption)}}}",
        r"\begin{tabular}{" + "l" * len(header) + "}", r"\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}", r"\end{table}", "",
    ])


def not_run_lines(cells_path: Path | None) -> list[str]:
    if cells_path is None or not Path(cells_path).is_file():
        return []
    cells = pd.read_csv(cells_path)
    missing = cells[cells["status"] != "run"]
    if missing.empty:
        return []
    grouped = missing.groupby(["method_label", "method", "reason"], dropna=False).size().reset_index(name="n")
    return [f"- {r.method_label} (`{r.method}`): {r.n} cells not run — {r.reason}"
            for r in grouped.itertuples()]


def comparison_rows(comp: pd.DataFrame, with_setting: bool = True) -> tuple[list[str], list[list[str]]]:
    header = (["setting"] if with_setting else []) + [
        "method", "ours (paper metric)", "seeds", "± 95 % CI over seeds", "ours at T", "ours at end", "paper",
        "Δ", "verdict", "flags"]
    rows = []
    for _, r in comp.iterrows():
        rows.append(([setting_name(r)] if with_setting else []) + [
            r["method_label"], fmt(r["value"], r["window_std"]), str(int(r["n_seeds"])), fmt(r["seed_ci"]),
            fmt(r["acc_at_budget"]), fmt(r["acc_end"]), fmt(r["paper"], r["paper_std"]), fmt(r["delta"]),
            r["verdict"], flags_text(r.get("flags"))])
    return header, rows


def flags_text(flags) -> str:
    return flags if isinstance(flags, str) and flags else "–"


def window_note(comp: pd.DataFrame) -> str:
    """How many evaluations the table window spans, when short runs shrank it (metrics.half_window_for)."""
    if comp.empty or "half_window" not in comp or comp["half_window"].isna().all():
        return ""
    halves = sorted({int(h) for h in comp["half_window"].dropna()})
    if halves == [M.HALF_WINDOW]:
        return ""
    spans = ", ".join(str(2 * h) for h in halves)
    return (f"Short runs: the window spans {spans} evaluations instead of the paper's 20 (at most a fifth of a "
            "run's evaluations, so that the value describes the end of the run).")


def write_comparison(comp: pd.DataFrame, out: Path, title: str, cells: Path | None,
                     header_rows: tuple[list[str], list[list[str]]] | None = None) -> None:
    """Write <out>.csv (machine-readable, read by the report), <out>.md and <out>.tex."""
    out.parent.mkdir(parents=True, exist_ok=True)
    comp.to_csv(out.with_suffix(".csv"), index=False)
    header, rows = header_rows or comparison_rows(comp)
    budgets = ", ".join(f"{DATASET_NAMES.get(d, d)} T = {b:,.0f} s"
                        for d, b in comp.drop_duplicates("dataset")[["dataset", "budget"]].itertuples(index=False))
    md = [f"# {title}", "",
          ("Accuracy (%) with the paper's metric: mean ± std over the 20 evaluations around the first "
          "evaluation after the time budget (reference §9.3), averaged over seeds; `± 95 % CI over seeds` is "
          "the half width of the Student-t interval of that mean (– for one seed), `ours at T` the seed-mean "
          "accuracy at that evaluation, `ours at end` at the run's last evaluation. Verdict: within spread "
          "when |Δ| ≤ 2σ, σ² = window std² + population std across seeds² + paper std²; Δ is – where "
          "nothing is compared. Flags: see the report's health notes (paper_figures/health.py)."), ""]
    if budgets:
        md += [f"Budgets: {budgets}.", ""]
    wnote = window_note(comp)
    if wnote:
        md += [wnote, ""]
    note = stand_in_note(comp) if not comp.empty else ""
    if note:
        md += [f"> {note}", ""]
    md += [markdown_table(rows, header) if rows else "_No cell of this table was run._", ""]
    missing = not_run_lines(cells)
    if missing:
        md += ["Not run:", "", *missing, ""]
    out.with_suffix(".md").write_text("\n".join(md))
    out.with_suffix(".tex").write_text(latex_table(rows, header, title))


def table_main(argv: list[str] | None, title: str, default_reference: list[str],
               label_order: list[str] | None = None) -> int:
    """Entry point of the plain ours-vs-paper tables."""
    a = parse_args(title, argv)
    table = read_table(a.table)
    comp = compare(table, read_reference(a.reference, reference_tables(a, default_reference)))
    comp = order(comp, label_order)
    write_comparison(comp, a.out, title, a.cells)
    print(f"{a.out}.md: {len(comp)} cells")
    return 0
