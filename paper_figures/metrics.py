"""The paper's table metric (reference §9.3, B16) and the across-seed summary.

Kept separate from the engine (design §3: figure scripts import nothing from ``fedgmr``); the engine has
its own copy in ``fedgmr/results.py``.

Per run: take the first evaluation whose virtual time exceeds the budget T (the last one if none does) at
index idx, and report mean and population std of ``acc[idx - 10 : idx + 10]`` x 100 — a window of 20
*evaluations*, not a time span. The start is clamped at 0 (the authors' list slice would wrap around for
idx < 10, which never happens at the paper's budgets). Runs with fewer than 100 evaluations get a
narrower window (`half_window_for`: a tenth of their evaluations each side), so that a short run's value
describes its end rather than its whole curve. Across seeds we report the mean of the per-run values, their
population std (kept for the combined spread of the verdict) and a 95 % t interval of the mean (the paper's
tables are single-seed, so their "±" is the window std).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HALF_WINDOW = 10
# Runs with few evaluations (the demo, short stand-in runs) get a window of at most a fifth of their evaluations,
# so that the table value describes the end of the run and not the whole curve from chance. Runs with at least
# 100 evaluations (every paper-scale run) keep the paper's 20 (reference §9.3).
WINDOW_FRACTION = 0.1
# Two-sided 95 % quantiles of Student's t by degrees of freedom (no scipy in the environment); above 30: normal.
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]
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


def half_window_for(n_evals: int, half_window: int = HALF_WINDOW) -> int:
    """Half width of the table window: the paper's 10, shrunk to a tenth of the run's evaluations (at least 1)."""
    return int(min(half_window, max(1, int(n_evals * WINDOW_FRACTION))))


def smoothing_for(n_evals: int, window: int) -> int:
    """Length of a curve's moving average, shrunk the same way for runs with few evaluations."""
    return int(min(window, max(1, int(n_evals * WINDOW_FRACTION))))


def t_quantile(df: int) -> float:
    """Two-sided 95 % quantile of Student's t with `df` degrees of freedom."""
    return _T95[df - 1] if df <= len(_T95) else 1.96


def t_interval(values) -> tuple[float, float, float]:
    """(mean, low, high) of the 95 % t interval of the mean; low = high = nan with fewer than two values."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = t_quantile(v.size - 1) * float(v.std(ddof=1)) / np.sqrt(v.size)
    return mean, mean - half, mean + half


def paper_value(times, accs, budget: float, half_window: int | None = None) -> tuple[float, float, int]:
    """(mean x 100, population std x 100, idx) of acc over evaluations idx-half .. idx+half-1.

    `half_window` None: the paper's 10, shrunk for runs with fewer than 100 evaluations (`half_window_for`).
    """
    accs = np.asarray(accs, dtype=float)
    if half_window is None:
        half_window = half_window_for(accs.size)
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
        loss = run["loss_server"].to_numpy(dtype=float) if "loss_server" in run else np.full(len(run), np.nan)
        rows.append(dict(zip(keys, key), value=value, window_std=std,
                         acc_at_budget=float(run["acc"].iloc[idx] * 100),
                         acc_end=float(run["acc"].iloc[-1] * 100),
                         reached=bool((times > budget).any()), n_evals=len(run),
                         half_window=half_window_for(len(run)),
                         final_density=float(run["avg_density"].iloc[-1]),
                         loss_start=float(loss[0]), loss_end=_tail_mean(loss),
                         end_time=float(times[-1])))
    columns = keys + ["value", "window_std", "acc_at_budget", "acc_end", "reached", "n_evals", "half_window",
                      "final_density", "loss_start", "loss_end", "end_time"]
    return pd.DataFrame(rows, columns=columns)


def _tail_mean(values: np.ndarray, fraction: float = 0.25) -> float:
    """Mean of the last quarter of a series (at least one value), ignoring NaN."""
    values = np.asarray(values, dtype=float)
    tail = values[-max(1, int(round(values.size * fraction))):]
    return float(np.nanmean(tail)) if np.isfinite(tail).any() else float("nan")


SUMMARY_COLUMNS = ["value", "window_std", "seed_std", "seed_ci", "n_seeds", "acc_at_budget", "acc_end", "reached",
                   "final_density", "n_evals", "half_window"]


def _ci_half(values: pd.Series) -> float:
    mean, lo, hi = t_interval(values.to_numpy())
    return float(hi - mean)


def seed_summary(per_run: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: across-seed mean of the paper metric, mean window std, seed std (population), the
    half width of the 95 % t interval over seeds (NaN for one seed), and the seed-mean accuracy at the end."""
    if per_run.empty:
        return pd.DataFrame(columns=CELL_KEYS + SUMMARY_COLUMNS)
    grouped = per_run.groupby(CELL_KEYS, dropna=False, sort=True)
    out = grouped.agg(
        value=("value", "mean"),
        window_std=("window_std", "mean"),
        seed_std=("value", lambda v: float(np.std(v.to_numpy()))),
        seed_ci=("value", _ci_half),
        n_seeds=("seed", "nunique"),
        acc_at_budget=("acc_at_budget", "mean"),
        acc_end=("acc_end", "mean"),
        reached=("reached", "all"),
        final_density=("final_density", "mean"),
        n_evals=("n_evals", "min"),
        half_window=("half_window", "min"),
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
