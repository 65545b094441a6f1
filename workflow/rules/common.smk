# Load and validate the config, expand the paper grids into cells and runs, and name every target.
# All logic of the workflow lives here and in workflow/lib/grids.py; the other rule files only declare rules.

import json
import sys
from pathlib import Path

import pandas as pd
from snakemake.logging import logger
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.current_basedir).parent / "lib"))
import grids as G  # noqa: E402

validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"].rstrip("/")
RESOURCES = config["resources"].rstrip("/")
PY = config.get("python") or sys.executable
REFERENCE = "paper_figures/reference/paper-results.csv"
# Conda environment of every rule (relative to the rule files); used with --software-deployment-method conda.
ENV = "../envs/fedgmr.yaml"

GRIDS = G.load_grids("config/experiments", config["experiments"])
for _grid in GRIDS.values():
    validate(_grid, "../schemas/experiment.schema.yaml")


def _engine_hooks():
    """The engine's method registry and run-id function, or (None, None) if fedgmr cannot be imported."""
    try:
        from fedgmr.config import resolve_config, run_id
        from fedgmr.methods.registry import METHODS
    except Exception as exc:  # noqa: BLE001 - the DAG still builds, with local run ids
        logger.warning(f"fedgmr not importable ({exc}); using local run ids and no registry check")
        return None, None
    return set(METHODS), lambda raw: run_id(resolve_config(raw))


_AVAILABLE, _RESOLVE = _engine_hooks()
CELLS, RUNS = G.build_cells(config, GRIDS, available=_AVAILABLE, resolve=_RESOLVE)
CELLS_DF = pd.DataFrame(CELLS, columns=list(G.CELL_FIELDS) + ["run_id", "status", "reason"])

# Paper output id (rule name) -> experiment it is drawn from.
OUTPUTS = {out: name for name, grid in GRIDS.items() for out in grid["outputs"]}
# Engine dataset -> raw source for data_prep (first one configured).
SOURCES = {}
for _ds in config["datasets"].values():
    if _ds.get("source") and _ds["engine"] not in SOURCES:
        SOURCES[_ds["engine"]] = _ds["source"]


wildcard_constraints:
    run_id="[0-9a-f]{6,64}",
    experiment="|".join(GRIDS) or "none",
    dataset="[a-z0-9_]+",


# ---- runs ---------------------------------------------------------------------------------------------


def run_dir(run_id):
    return f"{RESULTS}/runs/{run_id}"


def run_outputs(run_id):
    return [f"{run_dir(run_id)}/{name}" for name in ("metrics.csv", "clients.csv", "run.json", "config.json")]


def run_config_json(wildcards):
    return json.dumps(RUNS[wildcards.run_id], sort_keys=True)


def run_dataset(wildcards):
    """The prepared dataset directory a run reads (synthetic data needs none)."""
    raw = RUNS[wildcards.run_id]
    root = raw["dataset"].get("root")
    return [root] if root else []


def run_compute(run_id, key):
    """Cluster runtime (minutes) or memory of one run, from config `compute` by engine dataset."""
    dataset = RUNS[run_id]["dataset"]["name"] if run_id in RUNS else "default"
    table = config["compute"]
    return table.get(dataset, table["default"])[key]


def run_device(wildcards, resources):
    return "cuda" if int(resources.gpu) > 0 else config["engine"]["device"]


def run_on_failure(wildcards):
    """Shell run after an engine error: fail the job, or record the failure (config tolerate_failed_runs)."""
    if not config.get("tolerate_failed_runs", False):
        return "exit 1"
    rid = wildcards.run_id
    out, cfg, log = run_dir(rid), f"{RESULTS}/configs/{rid}.json", f"{RESULTS}/logs/train/{rid}.log"
    return f"{PY} workflow/scripts/mark_failed.py --out {out} --log {log} --config {cfg}"


def data_source_flag(wildcards):
    source = SOURCES.get(wildcards.dataset)
    return f"--source {source}" if source else ""


# ---- experiments, tables, paper outputs ---------------------------------------------------------------


def experiment_cells(experiment):
    return CELLS_DF[CELLS_DF["experiment"] == experiment]


def experiment_run_files(wildcards):
    cells = experiment_cells(wildcards.experiment)
    ids = sorted(set(cells.loc[cells["status"] == "run", "run_id"]))
    return [f"{run_dir(r)}/{name}" for r in ids for name in ("metrics.csv", "run.json")]


def experiment_cells_json(wildcards):
    return experiment_cells(wildcards.experiment).to_json(orient="records")


def table_of(experiment):
    return f"{RESULTS}/tables/{experiment}.parquet"


def cells_of(experiment):
    return f"{RESULTS}/tables/{experiment}.cells.csv"


def paper_output_files(out_id):
    """The files one paper output rule writes."""
    if out_id.startswith("table_"):
        return [f"{RESULTS}/tables/{out_id}.{ext}" for ext in ("md", "tex", "csv")]
    return [f"{RESULTS}/figures/{out_id}.{ext}" for ext in ("pdf", "png")]


def all_paper_outputs():
    return [path for out_id in OUTPUTS for path in paper_output_files(out_id)]


def table_outputs():
    return [f"{RESULTS}/tables/{o}.csv" for o in OUTPUTS if o.startswith("table_")]


def figure_outputs():
    return [f"{RESULTS}/figures/{o}.png" for o in OUTPUTS if o.startswith("fig_")]


def not_run_cells():
    return CELLS_DF[CELLS_DF["status"] != "run"]


logger.info(
    f"fedgmr-repro: {len(CELLS)} cells in {len(GRIDS)} experiments, {len(RUNS)} unique runs, "
    f"{len(not_run_cells())} cells not run; outputs in {RESULTS}/"
)
