"""Expand the paper grids (config/experiments/*.yaml) into cells and engine run configs.

A *cell* is one point of a paper table or figure: (experiment, dataset, split, heterogeneity, method
label, semantics, seed, patience, fixed density). A *run* is one engine simulation, named by the hash of
its resolved config (``fedgmr.config.run_id``), so a run shared by several cells or experiments (FedGMR
appears in main, ablation, aggregation, trigger and semantics) is computed once.

This module knows nothing about Snakemake or the engine: ``workflow/rules/common.smk`` passes in the
method registry and the resolver. It is imported by the Snakefile and by tests.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

# Fields a cell carries (also the run parameters written into the tidy tables).
CELL_FIELDS = (
    "experiment", "dataset", "engine_dataset", "split", "heterogeneity", "method_label", "family", "method",
    "semantics", "seed", "patience", "fixed_density", "budget",
)
# Fields the `subset` config may filter on.
SUBSET_FIELDS = (
    "dataset", "split", "heterogeneity", "seed", "method", "method_label", "semantics", "patience",
    "fixed_density",
)
BUDGET_TOKEN = "$budget"


class GridError(ValueError):
    """A grid or workflow config that cannot be expanded."""


def load_yaml(path: str | Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def deep_merge(base: dict, extra: dict | None) -> dict:
    """Return ``base`` updated recursively with ``extra`` (mappings merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _substitute(value: Any, budget: float) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, budget) for v in value]
    if value == BUDGET_TOKEN:
        return float(budget)
    return value


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _per_dataset(value: Any, dataset: str) -> Any:
    """``{default: x, <dataset>: y}`` -> the dataset's entry; anything else unchanged."""
    if isinstance(value, dict) and ("default" in value or dataset in value):
        return value.get(dataset, value.get("default"))
    return value


def patience_for(cfg: dict, spec: Any, dataset: str, split: str, heterogeneity: str, method: str) -> list[int]:
    """Patience values of one method entry in one setting (reference §5.1)."""
    spec = _per_dataset(spec if spec is not None else "baseline", dataset)
    if spec == "setting":
        try:
            return [int(cfg["patience"]["setting"][dataset][split][heterogeneity])]
        except KeyError as exc:
            raise GridError(f"patience.setting has no value for {dataset}/{split}/{heterogeneity}") from exc
    if spec == "baseline":
        table = cfg["patience"]["baseline"]
        per_ds = table.get(dataset, {}) or {}
        return [int(per_ds.get(method, per_ds.get("default", table["default"])))]
    return [int(p) for p in _as_list(spec)]


def expand_grid(cfg: dict, grid: dict) -> list[dict]:
    """All cells of one grid (before subsetting and availability checks)."""
    name = grid["name"]
    seeds = grid.get("seeds", cfg["seeds"])
    cells = []
    for dataset, split, het, sem, entry in itertools.product(
        grid["datasets"], grid["splits"], grid["heterogeneity"], grid.get("semantics", ["released"]),
        grid["methods"],
    ):
        if dataset not in cfg["datasets"]:
            raise GridError(f"grid {name}: dataset {dataset!r} is not in config `datasets`")
        ds = cfg["datasets"][dataset]
        patiences = patience_for(cfg, entry.get("patience"), dataset, split, het, entry["method"])
        densities = _as_list(_per_dataset(entry.get("fixed_density"), dataset))
        for patience, density, seed in itertools.product(patiences, densities, seeds):
            fields = {
                "experiment": name, "dataset": dataset, "engine_dataset": ds["engine"], "split": split,
                "heterogeneity": het, "method": entry["method"], "semantics": sem, "seed": int(seed),
                "patience": int(patience), "fixed_density": None if density is None else float(density),
                "budget": float(ds["budget"]),
            }
            fields["method_label"] = str(entry["label"]).format(**fields)
            fields["family"] = entry.get("family", fields["method_label"])
            cells.append({"fields": fields, "overrides": entry.get("overrides", {})})
    return cells


def run_config(cfg: dict, fields: dict, method_overrides: dict | None = None) -> dict:
    """The raw engine config of one cell (what ``python -m fedgmr run`` reads)."""
    ds = cfg["datasets"][fields["dataset"]]
    engine_ds = ds["engine"]
    raw: dict[str, Any] = {
        "method": fields["method"],
        "semantics": fields["semantics"],
        "seed": fields["seed"],
        "dataset": {
            "name": engine_ds,
            "root": f"{cfg['resources']}/{engine_ds}",
            "partition": ds.get("partition", {}).get(fields["split"], fields["split"]),
        },
        "clients": {"heterogeneity": fields["heterogeneity"]},
        "restoration": {"patience": fields["patience"]},
        # Intra-op threads change CPU results in the last digits, so the engine's run id includes them; the
        # same value is the train rule's Snakemake `threads` (sbatch --cpus-per-task).
        "run": {"threads": int((cfg.get("engine") or {}).get("threads", 1))},
    }
    if fields.get("fixed_density") is not None:
        raw["fixed_density"] = fields["fixed_density"]
    raw = deep_merge(raw, cfg.get("run_overrides"))
    raw = deep_merge(raw, ds.get("overrides"))
    raw = deep_merge(raw, method_overrides)
    return _substitute(raw, fields["budget"])


def local_run_id(raw: dict) -> str:
    """Fallback run id (hash of the raw config) when the engine cannot be imported."""
    blob = json.dumps(raw, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _subset_for(cfg: dict, experiment: str) -> dict:
    subset = cfg.get("subset") or {}
    out = dict(subset.get("all") or {})
    out.update(subset.get(experiment) or {})
    return out


def _keep(fields: dict, subset: dict) -> bool:
    for key, allowed in subset.items():
        if key not in SUBSET_FIELDS:
            raise GridError(f"subset: unknown field {key!r} (one of {', '.join(SUBSET_FIELDS)})")
        value = fields[key]
        allowed = _as_list(allowed)
        if isinstance(value, float):
            if not any(a is not None and abs(float(a) - value) < 1e-12 for a in allowed):
                return False
        elif value not in allowed:
            return False
    return True


def build_cells(
    cfg: dict,
    grids: dict[str, dict],
    available: Iterable[str] | None = None,
    resolve: Callable[[dict], str] | None = None,
) -> tuple[list[dict], dict[str, dict]]:
    """Expand the active experiments into cells and the unique runs they need.

    Args:
        cfg: the workflow config (config/config.yaml plus profile overrides).
        grids: experiment name -> grid mapping.
        available: registered method names; None skips the registry check.
        resolve: raw config -> run id; may raise to mark the cell invalid. None: ``local_run_id``.

    Returns:
        (cells, runs): every cell as a flat dict with ``run_id``, ``status`` ("run" | "not_run") and
        ``reason``; runs maps run id -> raw config, for cells with status "run".
    """
    available = None if available is None else set(available)
    disabled = set((cfg.get("methods") or {}).get("disabled") or [])
    resolve = resolve or local_run_id
    cells: list[dict] = []
    runs: dict[str, dict] = {}
    resolved_cache: dict[str, tuple[str, str]] = {}
    for name in cfg["experiments"]:
        if name not in grids:
            raise GridError(f"experiment {name!r} has no grid (config/experiments/{name}.yaml)")
        subset = _subset_for(cfg, name)
        for cell in expand_grid(cfg, grids[name]):
            fields = cell["fields"]
            if not _keep(fields, subset):
                continue
            row = dict(fields, run_id="", status="not_run", reason="")
            if fields["method"] in disabled:
                row["reason"] = "method disabled in config (methods.disabled)"
            elif available is not None and fields["method"] not in available:
                row["reason"] = "method not registered in fedgmr.methods.registry.METHODS"
            else:
                raw = run_config(cfg, fields, cell["overrides"])
                key = json.dumps(raw, sort_keys=True)
                if key not in resolved_cache:
                    try:
                        resolved_cache[key] = (resolve(raw), "")
                    except Exception as exc:  # noqa: BLE001 - any engine refusal makes the cell "not run"
                        resolved_cache[key] = ("", f"invalid run config: {str(exc).splitlines()[0]}")
                run_id, error = resolved_cache[key]
                if error:
                    row["reason"] = error
                else:
                    row.update(run_id=run_id, status="run")
                    runs.setdefault(run_id, raw)
            cells.append(row)
    return cells, runs


def load_grids(directory: str | Path, names: Iterable[str]) -> dict[str, dict]:
    out = {}
    for name in names:
        path = Path(directory) / f"{name}.yaml"
        if not path.is_file():
            raise GridError(f"experiment {name!r}: {path} not found")
        grid = load_yaml(path)
        if grid.get("name") != name:
            raise GridError(f"{path}: `name` must be {name!r}")
        out[name] = grid
    return out
