"""What a workflow configuration runs, for the report's Scope section (written to <results>/scope.json).

Per experiment: the grid's cells before and after `subset`, the field values the subset removed, the outputs and
the paper tables they are compared with; plus seeds, datasets (engine, budget, overrides), run overrides, the git
commit and package versions. Knows nothing about Snakemake: report.smk passes in the config, the grids and the
cells kept (``grids.build_cells``).
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

import grids as G
import pandas as pd

PACKAGES = ("snakemake", "torch", "numpy", "pandas")


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def git_state() -> str:
    """Short commit id, with a note when tracked files have uncommitted changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + (" with uncommitted changes" if dirty else "")


def _as_text(value) -> str:
    """A cell field as text; None and NaN (no fixed density) alike."""
    return "–" if value is None or (isinstance(value, float) and value != value) else str(value)


def scope_info(config: dict, grids: dict[str, dict], cells: pd.DataFrame) -> dict:
    experiments = {}
    for name, grid in grids.items():
        full = [c["fields"] for c in G.expand_grid(config, grid)]
        kept = cells[cells["experiment"] == name]
        subset = dict((config.get("subset") or {}).get("all") or {})
        subset.update((config.get("subset") or {}).get(name) or {})
        dropped = {}
        # Only the fields the subset filters: other fields (e.g. patience) differ only as a consequence.
        for field in (f for f in G.SUBSET_FIELDS if f in subset):
            values = {_as_text(f[field]) for f in full}
            left = {_as_text(v) for v in kept[field]}
            dropped[field] = sorted(values - left)
        experiments[name] = {
            "outputs": grid["outputs"], "reference": grid.get("reference", []), "grid_cells": len(full),
            "kept_cells": len(kept), "subset": subset, "dropped_values": dropped,
        }
    datasets = {k: {"engine": v["engine"], "budget": v["budget"], "overrides": v.get("overrides") or {}}
                for k, v in config["datasets"].items()}
    return {"experiments": experiments, "seeds": config["seeds"], "datasets": datasets,
            "run_overrides": config.get("run_overrides") or {}, "git": git_state(), "versions": versions()}
