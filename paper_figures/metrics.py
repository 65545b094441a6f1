"""The paper's table metric (reference §9.3, B16) and the across-seed summary.

Kept separate from the engine (design §3: figure scripts import nothing from ``fedgmr``); the engine has
its own copy in ``fedgmr/results.py``.

Per run: take the first evaluation whose virtual time exceeds the budget T (the last one if none does) at
index idx, and report mean and population std of ``acc[idx - 10 : idx + 10]`` x 100 — a window of 20
*evaluations*, not a time span. The start is clamped at 0 (the authors' list slice would wrap around for
idx < 10, which never happens at the paper's budgets). Across seeds we report the mean of the per-run
values and their population std (the paper's tables are single-seed, so their "±" is the window std).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HALF_WINDOW = 10
# Columns identifying one cell (one table entry); a run adds `seed`.
CELL_KEYS = ["experiment", "dataset", "engine_dataset", "split", "heterogeneity", "method_label", "family",
             "method", "semantics", "patience", "fixed_density", "budget"]


def window_index(times: np.ndarray, budget: float) -> int:
    """Index of the first evaluation with time > budget; the last index if there is none."""
    times = np.asarray(times, dtype=float)
    if times.size == 0:
        raise ValueError("no evaluations")
    after = np.flatnonzero(times > budget)
    return int(after[0]) if after.size else int(times.size - 1)


def paper_value(times, accs, budget: float, half_window: int = HALF_WINDOW) -> tuple[float, float, int]:
    """(mean x 100, population std x 100, idx) of acc over evaluations idx-half .. idx+half-1."""
    accs = np.asarray(accs, dtype=float)
    idx = window_index(times, budget)
    window = accs[max(idx - half_window, 0): idx + half_window]
    return float(window.mean() * 100), float(window.std() * 100), idx


def run_values(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell x seed: the paper metric of that run."""
    rows = []
    keys = CELL_KEYS + ["seed"]
    table = table.sort_values("tick")
    for key, run in table.groupby(keys, dropna=False, sort=True):
        times = run["virtual_time"].to_numpy()
        budget = float(run["budget"].iloc[0])
        value, std, idx = paper_value(times, run["acc"].to_numpy(), budget)
        rows.append(dict(zip(keys, key), value=value, window_std=std,
                         acc_at_budget=float(run["acc"].iloc[idx] * 100),
                         reached=bool((times > budget).any()), n_evals=len(run),
                         final_density=float(run["avg_density"].iloc[-1])))
    columns = keys + ["value", "window_std", "acc_at_budget", "reached", "n_evals", "final_density"]
    return pd.DataFrame(rows, columns=columns)


def seed_summary(per_run: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: across-seed mean of the paper metric, mean window std, seed std (population)."""
    if per_run.empty:
        return pd.DataFrame(columns=CELL_KEYS + ["value", "window_std", "seed_std", "n_seeds",
                                                 "acc_at_budget", "reached", "final_density"])
    grouped = per_run.groupby(CELL_KEYS, dropna=False, sort=True)
    out = grouped.agg(
        value=("value", "mean"),
        window_std=("window_std", "mean"),
        seed_std=("value", lambda v: float(np.std(v.to_numpy()))),
        n_seeds=("seed", "nunique"),
        acc_at_budget=("acc_at_budget", "mean"),
        reached=("reached", "all"),
        final_density=("final_density", "mean"),
    )
    return out.reset_index()


def spread(window_std: float, seed_std: float, paper_std: float | None = None) -> float:
    """Combined spread used by the verdict: sqrt(window_std^2 + seed_std^2 + paper_std^2)."""
    paper = 0.0 if paper_std is None or pd.isna(paper_std) else float(paper_std)
    return float(np.sqrt(window_std ** 2 + seed_std ** 2 + paper ** 2))


def verdict(ours: float, paper: float | None, sigma: float, reached: bool = True, k: float = 2.0) -> str:
    """One-line verdict: is the paper's value within k spreads of ours?"""
    if paper is None or pd.isna(paper):
        return "no paper value"
    note = "" if reached else " (run ended before the budget)"
    delta = ours - paper
    if abs(delta) <= k * sigma:
        return f"within spread (|Δ| {abs(delta):.2f} ≤ {k:g}σ {k * sigma:.2f}){note}"
    return f"outside spread (|Δ| {abs(delta):.2f} > {k:g}σ {k * sigma:.2f}){note}"


def curves(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Seed-mean curves: mean virtual time, acc and density per (by..., tick)."""
    agg = table.groupby(by + ["tick"], dropna=False, sort=True).agg(
        virtual_time=("virtual_time", "mean"), acc=("acc", "mean"), avg_density=("avg_density", "mean"))
    return agg.reset_index()


def moving_average(values, window: int) -> np.ndarray:
    """Trailing moving average (the notebooks' cov=True uses length 20); shorter at the start."""
    series = pd.Series(np.asarray(values, dtype=float))
    return series.rolling(max(int(window), 1), min_periods=1).mean().to_numpy()
