"""Health flags per table cell: what a reader must know before trusting a number.

Each check is a small function in ``CHECKS`` (a registry, so a new check is one function and one line). A check
sees one cell's per-run values (``metrics.run_values``: one row per seed) and returns a short flag or None:

* ``at chance``: the seed-mean accuracy at the end of the run is at most chance + 2 points (chance: 1/classes,
  or 5/vocabulary for top-5 next-token accuracy). Such a cell says nothing about the method.
* ``loss not decreasing``: the server loss over the last quarter of the evaluations is not below the first
  evaluation's, in the seed mean.
* ``budget not reached``: some run has no evaluation after the time budget T (it ended before T, or its next
  evaluation tick fell after its max_time), so its value is taken at its last evaluation.

A separate check over whole settings, ``identical_cells``, finds cells whose accuracy curves equal another cell's
for every seed (e.g. released FedRolex = HeteroFL on FEMNIST and CIFAR-10 by construction, reference B11).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

# Chance accuracy (fraction) per engine dataset: 1/classes for images, 5/vocabulary for top-5 language models.
CHANCE = {
    "femnist": 1 / 62, "cifar10": 1 / 10, "imagenet100": 1 / 100, "fmnist": 1 / 10, "synthetic_image": 1 / 10,
    "stackoverflow": 5 / 10_000, "changelogs": 5 / 10_000, "synthetic_text": 5 / 64,
}
CHANCE_MARGIN = 2.0  # accuracy points above chance still counted as "at chance"
# Paper datasets on which the released FedRolex is static, i.e. HeteroFL (reference B11).
STATIC_FEDROLEX = {"femnist", "cifar10"}
# Cells compared for identical curves: same setting, any method and patience (patience changes nothing without
# restoration, so baselines with different patience values, e.g. FEMNIST FedRolex 10 vs HeteroFL 5, still match).
SETTING = ["experiment", "dataset", "engine_dataset", "split", "heterogeneity", "semantics", "fixed_density",
           "budget"]


def at_chance(runs: pd.DataFrame) -> str | None:
    chance = CHANCE.get(str(runs["engine_dataset"].iloc[0]))
    if chance is None:
        return None
    return "at chance" if runs["acc_end"].mean() <= chance * 100 + CHANCE_MARGIN else None


def loss_not_decreasing(runs: pd.DataFrame) -> str | None:
    start, end = runs["loss_start"].mean(), runs["loss_end"].mean()
    if not (np.isfinite(start) and np.isfinite(end)):
        return None
    return "loss not decreasing" if end >= start else None


def budget_not_reached(runs: pd.DataFrame) -> str | None:
    return None if runs["reached"].all() else "budget not reached"


CHECKS: dict[str, Callable[[pd.DataFrame], str | None]] = {
    "at_chance": at_chance,
    "loss_not_decreasing": loss_not_decreasing,
    "budget_not_reached": budget_not_reached,
}


def _k(key: tuple) -> tuple:
    """A hashable, comparable key: NaN (no fixed density) becomes None, as NaN != NaN."""
    return tuple(None if isinstance(x, float) and np.isnan(x) else x for x in key)


def _static_fedrolex_pair(a: str, b: str) -> bool:
    """FedRolex and HeteroFL variants of the same kind (base, +Aux, +Aux+GMR): `fedrolex_aux` vs `heterofl_aux`."""
    return {a, b} == {a.replace("heterofl", "fedrolex"), a.replace("fedrolex", "heterofl")} and a != b


def identical_cells(table: pd.DataFrame) -> dict[tuple, str]:
    """Cell key (CELL_KEYS of metrics) -> "identical to <label>" for cells whose curves equal another's."""
    import metrics as M

    out: dict[tuple, str] = {}
    if table.empty:
        return out
    curves = {}
    for key, run in table.sort_values("tick").groupby(M.CELL_KEYS + ["seed"], dropna=False, sort=True):
        curves[_k(key)] = tuple(np.round(run["acc"].to_numpy(dtype=float), 12))
    by_cell: dict[tuple, dict] = {}
    for key, curve in curves.items():
        by_cell.setdefault(key[:-1], {})[key[-1]] = curve
    fields = M.CELL_KEYS
    setting_idx = [fields.index(f) for f in SETTING]
    label_idx, method_idx = fields.index("method_label"), fields.index("method")
    groups: dict[tuple, list[tuple]] = {}
    for cell in by_cell:
        groups.setdefault(tuple(cell[i] for i in setting_idx), []).append(cell)
    for cells in groups.values():
        for i, a in enumerate(cells):
            for b in cells[:i]:
                if by_cell[a] == by_cell[b]:
                    note = ""
                    if _static_fedrolex_pair(a[method_idx], b[method_idx]) \
                            and a[fields.index("dataset")] in STATIC_FEDROLEX \
                            and a[fields.index("semantics")] == "released":
                        note = " by construction (B11)"
                    out.setdefault(a, f"identical to {b[label_idx]}{note}")
                    out.setdefault(b, f"identical to {a[label_idx]}{note}")
    return out


def cell_flags(table: pd.DataFrame, per_run: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per cell (metrics.CELL_KEYS) with a `flags` column: "; "-joined flags, "" when healthy."""
    import metrics as M

    per_run = M.run_values(table) if per_run is None else per_run
    if per_run.empty:
        return pd.DataFrame(columns=M.CELL_KEYS + ["flags"])
    identical = identical_cells(table)
    rows = []
    for key, runs in per_run.groupby(M.CELL_KEYS, dropna=False, sort=True):
        flags = [f for check in CHECKS.values() if (f := check(runs))]
        if _k(key) in identical:
            flags.append(identical[_k(key)])
        rows.append(dict(zip(M.CELL_KEYS, key), flags="; ".join(flags)))
    return pd.DataFrame(rows, columns=M.CELL_KEYS + ["flags"])
