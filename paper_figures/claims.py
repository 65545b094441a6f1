"""The paper's qualitative claims (config/claims.yaml), tested on our runs with paired per-seed differences.

A claim compares two *terms* of one experiment's tidy table. A term is a cell selector (``{method_label: FedGMR}``,
``{fixed_density: 1.0}``, merged over the claim's ``where``) or the difference of two terms
(``{minus: [term, term]}``), which expresses "the gain grows from low to high heterogeneity". Every term is
evaluated per dataset and seed as the paper's table metric of that run (metrics.paper_value), so the claim's
difference is paired by seed: d_s = left_s − right_s.

Verdict per claim and dataset, from the 95 % Student-t interval of the mean of d over seeds:

* *holds*: the interval lies above 0;
* *fails*: the interval lies below 0;
* *inconclusive*: the interval contains 0, or there are fewer than ``MIN_SEEDS`` paired seeds;
* *not run*: no seed has both terms (the cells are outside the grid or its subset).

"≥" claims are tested like ">" claims (a tie is inconclusive, not a success). The verdict is only the interval's;
its note names every health flag (health.CHECKS: at chance, budget not reached, ...) of a cell the claim
compares, because a claim that "holds" against a cell stuck at chance, or read from a run that was never evaluated
near the budget, says little about the methods. The paper column gives the same
difference computed from the paper's numbers (paper-results.csv) for the claim's ``paper_tables``, where it has
them: the ordering the claim was read from.

Usage:
    python paper_figures/claims.py --claims config/claims.yaml --tables results/tables/*.parquet \
        --reference paper_figures/reference/paper-results.csv --out results/tables/claims
writes ``claims.csv`` (one row per claim x dataset) and ``claims.md``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import health as H
import metrics as M
import numpy as np
import pandas as pd
import yaml
from common import dataset_title, markdown_table

MIN_SEEDS = 3
DEFAULT_WHERE = {"semantics": "released"}
RELATIONS = {">": "greater", ">=": "not smaller"}
COLUMNS = ["claim", "text", "source", "experiment", "dataset", "engine_dataset", "relation", "n_seeds",
           "differences", "mean", "ci_low", "ci_high", "paper_difference", "verdict", "note"]
PAPER_KEYS = ["dataset", "split", "heterogeneity", "method_label"]


class ClaimError(ValueError):
    """A claims file or a claim that cannot be evaluated as written."""


@dataclass
class Claim:
    id: str
    text: str
    source: str
    experiment: str
    left: dict
    right: dict
    relation: str = ">"
    where: dict = field(default_factory=dict)
    paper_tables: list[str] = field(default_factory=list)


def load_claims(path: Path) -> list[Claim]:
    raw = yaml.safe_load(Path(path).read_text()) or {}
    claims = []
    for entry in raw.get("claims", []):
        unknown = set(entry) - set(Claim.__dataclass_fields__)
        if unknown:
            raise ClaimError(f"{path}: claim {entry.get('id')!r}: unknown keys {sorted(unknown)}")
        claim = Claim(**entry)
        if claim.relation not in RELATIONS:
            raise ClaimError(f"claim {claim.id}: relation must be one of {sorted(RELATIONS)}")
        claims.append(claim)
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ClaimError(f"{path}: duplicate claim ids")
    return claims


# ---- evaluating terms -------------------------------------------------------------------------------------


def _match(df: pd.DataFrame, selector: dict) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for key, value in selector.items():
        if key not in df.columns:
            raise ClaimError(f"selector field {key!r} is not a table column")
        if isinstance(value, float) or (key == "fixed_density" and value is not None):
            mask &= np.isclose(df[key].astype(float), float(value))
        else:
            mask &= df[key] == value
    return df[mask]


def term_values(per_run: pd.DataFrame, term: dict, where: dict) -> pd.Series:
    """Per (dataset, seed) value of a term; index (dataset, seed)."""
    if "minus" in term:
        a, b = term["minus"]
        return (term_values(per_run, a, where) - term_values(per_run, b, where)).dropna()
    sel = _match(per_run, {**DEFAULT_WHERE, **where, **term})
    if sel.duplicated(["dataset", "seed"]).any():
        cells = sel.drop_duplicates(M.CELL_KEYS)[["method_label", "heterogeneity", "patience"]].to_dict("records")
        raise ClaimError(f"selector {term} matches several cells per seed: {cells[:3]}")
    return sel.set_index(["dataset", "seed"])["value"]


def term_flags(per_run: pd.DataFrame, term: dict, where: dict, dataset: str) -> list[str]:
    """Health flags of the cells a term compares in one dataset, as "<cell>: <flag>"."""
    if "minus" in term:
        a, b = term["minus"]
        return term_flags(per_run, a, where, dataset) + term_flags(per_run, b, where, dataset)
    sel = _match(per_run, {**DEFAULT_WHERE, **where, **term, "dataset": dataset})
    out = []
    for _, runs in sel.groupby(M.CELL_KEYS, dropna=False, sort=True):
        name = " ".join(str(runs[k].iloc[0]) for k in ("method_label", "heterogeneity") if k in runs)
        out += [f"{name}: {flag}" for check in H.CHECKS.values() if (flag := check(runs))]
    return out


def paper_term(ref: pd.DataFrame, term: dict, where: dict, dataset: str) -> float:
    """The paper's number for a term in one dataset (NaN if the paper has none)."""
    if "minus" in term:
        a, b = term["minus"]
        return paper_term(ref, a, where, dataset) - paper_term(ref, b, where, dataset)
    sel = {k: v for k, v in {**where, **term}.items() if k in PAPER_KEYS}
    if ref.empty or "method_label" not in sel:
        return float("nan")
    rows = _match(ref[ref["dataset"] == dataset], sel)
    # `ref` is ordered by the claim's paper_tables: the first table listing the cell wins.
    return float(rows["paper"].iloc[0]) if len(rows) else float("nan")


def verdict(diffs: np.ndarray) -> tuple[str, float, float, float, str]:
    """(verdict, mean, ci low, ci high, note) of paired differences."""
    mean, lo, hi = M.t_interval(diffs)
    n = int(np.isfinite(diffs).sum())
    if n == 0:
        return "not run", mean, lo, hi, "no seed has both cells"
    if n < MIN_SEEDS:
        return "inconclusive", mean, lo, hi, f"{n} paired seed{'s' if n > 1 else ''} (< {MIN_SEEDS})"
    if lo > 0:
        return "holds", mean, lo, hi, ""
    if hi < 0:
        return "fails", mean, lo, hi, ""
    return "inconclusive", mean, lo, hi, "interval contains 0"


def evaluate(claims: list[Claim], tables: dict[str, pd.DataFrame], reference: pd.DataFrame) -> pd.DataFrame:
    """One row per claim and dataset of its experiment (one 'not run' row if the experiment has no runs)."""
    per_run = {name: M.run_values(t) for name, t in tables.items()}
    rows = []
    for c in claims:
        runs = per_run.get(c.experiment)
        base = dict(claim=c.id, text=c.text, source=c.source, experiment=c.experiment, relation=c.relation)
        if runs is None or runs.empty:
            rows.append(dict(base, dataset="", engine_dataset="", n_seeds=0, differences="", verdict="not run",
                             note=f"no runs of experiment {c.experiment!r}"))
            continue
        try:
            left = term_values(runs, c.left, c.where)
            right = term_values(runs, c.right, c.where)
        except ClaimError as exc:
            raise ClaimError(f"claim {c.id}: {exc}") from exc
        rank = {t: i for i, t in enumerate(c.paper_tables)}
        ref = reference[reference["table"].isin(rank)]
        ref = ref.iloc[np.argsort(ref["table"].map(rank).to_numpy(), kind="stable")]
        engines = runs.drop_duplicates("dataset").set_index("dataset")["engine_dataset"]
        datasets = [d for d in dict.fromkeys(runs["dataset"]) if _match(runs, {"dataset": d, **c.where}).size]
        for dataset in datasets or [""]:
            diff = (left - right).dropna()
            diff = diff.xs(dataset, level="dataset") if dataset in diff.index.get_level_values(0) else diff.iloc[:0]
            v, mean, lo, hi, note = verdict(diff.to_numpy(dtype=float))
            if dataset:
                flags = list(dict.fromkeys(term_flags(runs, c.left, c.where, dataset)
                                           + term_flags(runs, c.right, c.where, dataset)))
                if flags:
                    note = "; ".join([note] * bool(note) + ["cell flags: " + ", ".join(flags)])
            rows.append(dict(base, dataset=dataset, engine_dataset=engines.get(dataset, ""), n_seeds=len(diff),
                             differences=" ".join(f"{x:+.2f}" for x in diff.to_numpy()), mean=mean, ci_low=lo,
                             ci_high=hi, paper_difference=paper_term(ref, c.left, c.where, dataset)
                             - paper_term(ref, c.right, c.where, dataset), verdict=v, note=note))
    return pd.DataFrame(rows, columns=COLUMNS)


# ---- rendering -------------------------------------------------------------------------------------------


def _num(x, digits: int = 2) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:+.{digits}f}"


def markdown(result: pd.DataFrame) -> str:
    header = ["claim", "paper source", "data", "seeds", "per-seed differences", "mean", "95 % CI (t)",
              "paper", "verdict"]
    rows = []
    result = result.astype({c: object for c in ("dataset", "engine_dataset", "differences", "note")})
    result = result.fillna({"dataset": "", "engine_dataset": "", "differences": "", "note": ""})
    for r in result.itertuples():
        ci = "–" if pd.isna(r.ci_low) else f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
        verdict_text = r.verdict + (f" ({r.note})" if isinstance(r.note, str) and r.note else "")
        rows.append([f"{r.text} (`{r.claim}`)", r.source, (dataset_title(r.dataset, r.engine_dataset) if r.dataset else '') or "–",
                     str(r.n_seeds), r.differences or "–", _num(r.mean), ci, _num(r.paper_difference),
                     f"**{verdict_text}**"])
    counts = result["verdict"].value_counts()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in ("holds", "fails", "inconclusive", "not run"))
    lines = [
        ("Each claim of the paper is a comparison of two cells; per seed we take the difference of their "
         "table values (accuracy points, the paper's metric at the time budget), then the mean and its 95 % "
         f"Student-t interval over seeds. **holds**: the interval is above 0; **fails**: below 0; "
         f"**inconclusive**: it contains 0 or fewer than {MIN_SEEDS} seeds are paired; **not run**: the cells "
         "are not in this run's grid. `≥` claims are tested like `>`. *paper*: the same difference in the "
         "paper's numbers (on the paper's dataset)."), "",
        f"Verdicts: {summary}.", "",
        markdown_table(rows, header) if rows else "_No claims._", ""]
    return "\n".join(lines)


def read_result(path: Path) -> pd.DataFrame:
    """A claims CSV as written by `main`; the signed per-seed differences stay text ("+3.00 -1.20")."""
    return pd.read_csv(path, dtype={"differences": "string", "note": "string", "dataset": "string",
                                    "engine_dataset": "string"})


def read_tables(paths: list[Path]) -> dict[str, pd.DataFrame]:
    return {Path(p).name.split(".")[0]: pd.read_parquet(p) for p in paths}


def read_reference(path: Path) -> pd.DataFrame:
    ref = pd.read_csv(path)
    return ref.rename(columns={"method": "method_label", "value": "paper"})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--claims", required=True, type=Path, help="config/claims.yaml")
    p.add_argument("--tables", nargs="*", type=Path, default=[], help="tidy tables <experiment>.parquet")
    p.add_argument("--reference", required=True, type=Path, help="paper-results.csv")
    p.add_argument("--out", required=True, type=Path, help="output stem: writes <out>.csv and <out>.md")
    a = p.parse_args(argv)
    result = evaluate(load_claims(a.claims), read_tables(a.tables), read_reference(a.reference))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(a.out.with_suffix(".csv"), index=False)
    a.out.with_suffix(".md").write_text("# The paper's claims on our runs\n\n" + markdown(result))
    print(f"{a.out}.csv: {len(result)} claim rows; " + ", ".join(
        f"{k} {v}" for k, v in result["verdict"].value_counts().items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
