# Load and validate the config, expand the paper grids into cells and runs, and name every target.
# All logic of the workflow lives here and in workflow/lib/grids.py; the other rule files only declare rules.

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.current_basedir).parent / "lib"))
import grids as G  # noqa: E402

validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"].rstrip("/")
RESOURCES = config["resources"].rstrip("/")
# Interpreter of every job. Reaches shell commands as $FEDGMR_PY (see below), never as a param, which is a
# rerun trigger: another path to the same Python must not plan the grid again.
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
# Engine dataset -> (config key, raw source for data_prep); the first one configured.
SOURCES = {}
for _name, _ds in config["datasets"].items():
    if _ds["engine"] not in SOURCES or (_ds.get("source") and not SOURCES[_ds["engine"]][1]):
        SOURCES[_ds["engine"]] = (f"datasets.{_name}.source", _ds.get("source"))


wildcard_constraints:
    run_id="[0-9a-f]{6,64}",
    experiment="|".join(GRIDS) or "none",
    dataset="[a-z0-9_]+",


# ---- runs ---------------------------------------------------------------------------------------------


def run_dir(run_id):
    return f"{RESULTS}/runs/{run_id}"


def run_outputs(run_id):
    return [f"{run_dir(run_id)}/{name}" for name in ("metrics.csv", "clients.csv", "run.json", "config.json")]


def run_dataset(wildcards):
    """The prepared dataset directory a run reads (synthetic data needs none).

    ``ancient``: a prepared dataset is identified by its manifest checksum inside the run id, so a copy of
    the same data with a newer mtime (another machine, another data path) must not retrain anything.
    """
    raw = RUNS[wildcards.run_id]
    root = raw["dataset"].get("root")
    return [ancient(root)] if root else []


def run_compute(run_id, key):
    """Cluster runtime (minutes) or memory of one run, from config `compute` by engine dataset."""
    dataset = RUNS[run_id]["dataset"]["name"] if run_id in RUNS else "default"
    table = config["compute"]
    return table.get(dataset, table["default"])[key]


def run_config_json(wildcards):
    """The run's raw config without machine paths (the dataset root is passed on the command line)."""
    raw = json.loads(json.dumps(RUNS[wildcards.run_id]))
    raw["dataset"].pop("root", None)
    return json.dumps(raw, sort_keys=True)


def run_priority(wildcards):
    """Runs of the main table first, so that a first table appears early (Snakemake `priority`)."""
    return 10 if wildcards.run_id in MAIN_RUN_IDS else 0


def run_label(run_id):
    """method-dataset-split-level-seed of a run, for people (logs, status)."""
    raw = RUNS.get(run_id)
    if raw is None:
        return run_id
    ds = raw["dataset"]
    return "-".join(str(x) for x in (
        raw["method"], ds["name"], ds.get("partition", "?"), raw["clients"]["heterogeneity"], f"s{raw['seed']}"
    ))


def write_plan(path):
    """run_id, label and experiments of every planned run, as CSV (read by `fedgmr status`)."""
    exps = CELLS_DF[CELLS_DF["status"] == "run"].groupby("run_id")["experiment"].agg(
        lambda e: " ".join(sorted(set(e)))
    )
    plan = pd.DataFrame({"run_id": sorted(RUNS)})
    plan["label"] = [run_label(r) for r in plan["run_id"]]
    plan["experiments"] = [exps.get(r, "") for r in plan["run_id"]]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{path}.tmp")
    plan.to_csv(tmp, index=False)
    tmp.replace(path)


# ---- devices ------------------------------------------------------------------------------------------
# Local GPU machine: `snakemake --cores N --resources gpu=G` hands the G GPUs (ids 0..G-1, or config
# `gpu_ids`) to engine runs, `runs_per_gpu` at a time each. Every GPU id appears once per run it may hold
# ("slots"); the resource `gpu_slot` caps concurrent train jobs at the number of slots and
# workflow/scripts/engine_job.py locks one slot per job and sets CUDA_VISIBLE_DEVICES. On a cluster
# (non-local executor) the scheduler hands out GPUs (`gpu` resource, profiles/slurm) and no slots are used.


def _local_gpu_slots():
    # Inside a cluster job (remote execution) GPUs come from the scheduler, never from local slots.
    if workflow.remote_exec:
        return []
    declared = workflow.global_resources.get("gpu").value
    ids = [str(i) for i in (config.get("gpu_ids") or [])]
    if not ids and isinstance(declared, int) and declared > 0:
        ids = [str(i) for i in range(declared)]
    elif ids and isinstance(declared, int) and 0 < declared < len(ids):
        ids = ids[:declared]
    return [g for _ in range(int(config.get("runs_per_gpu", 1))) for g in ids]


GPU_SLOTS = _local_gpu_slots()
if GPU_SLOTS:
    workflow.register_resource("gpu_slot", len(GPU_SLOTS))
    logger.info(f"fedgmr-repro: {len(GPU_SLOTS)} GPU slots (devices {','.join(sorted(set(GPU_SLOTS)))})")


def train_gpu_resource(wildcards):
    """GPUs a train job asks the scheduler for: none locally (slots instead), engine.gpus on a cluster."""
    return 0 if GPU_SLOTS else int(config["engine"]["gpus"])


# Machine-specific pieces of the job commands reach the shell as environment variables (jobs inherit the
# environment; SLURM jobs re-read this file). Not params: a param is a rerun trigger, and another path to
# the same Python, another results root or another GPU count must not plan the grid again. Not `{GLOBAL}`
# in the command either, which `snakemake --lint` rightly flags.
os.environ.update(
    FEDGMR_PY=PY,
    FEDGMR_RESULTS=RESULTS,
    FEDGMR_GPU_SLOTS=",".join(GPU_SLOTS),
    FEDGMR_GPU_LOCKS=f"{RESULTS}/.gpu_slots",
    FEDGMR_CPU_DEVICE=str(config["engine"]["device"]),
    FEDGMR_ON_ERROR="" if config.get("tolerate_failed_runs", False) else "--strict",
)


# ---- data sources -------------------------------------------------------------------------------------


def data_source_flag(wildcards):
    """``--source <path>`` for data_prep, shell-quoted (a space or `;` in the path stays one argument).

    The source itself is checked by ``require_source`` (prepare_data's input function).
    """
    source = SOURCES.get(wildcards.dataset, (None, None))[1]
    return f"--source {shlex.quote(str(source))}" if source else ""


_SOURCE_CHECKED = {}


def require_source(engine_ds):
    """Stop while the DAG is built if ``engine_ds`` must be prepared and has no usable source.

    Called only for datasets the DAG has to prepare, so redrawing a figure never asks for raw data. The
    message names the config key; when Snakemake only plans (dry run, lint) it is a warning.
    """
    if engine_ds in _SOURCE_CHECKED or Path(f"{RESOURCES}/{engine_ds}").exists():
        return
    problems = check_sources([engine_ds])
    _SOURCE_CHECKED[engine_ds] = problems
    if not problems:
        return
    msg = f"missing dataset source (set it in the config or with --config): {problems[0]}"
    if planning_only():
        logger.warning(msg)
    else:
        raise WorkflowError(msg)


def check_sources(needed):
    """Fail while the DAG is built if a dataset that must be prepared has no usable source.

    ``needed``: engine dataset names whose prepared folder does not exist yet. data_prep's own check
    (the one its CLI runs before writing anything) decides; the message names the config key to set.
    """
    problems = []
    for engine_ds in sorted(needed):
        key, source = SOURCES.get(engine_ds, ("datasets.<name>.source", None))
        try:
            from data_prep.cli import _parser
            from data_prep.registry import preparers

            args = ["prepare", engine_ds, "--out", f"{RESOURCES}/{engine_ds}"]
            if source:
                args.extend(["--source", str(source)])
            ns = _parser().parse_args(args)
            if hasattr(ns, "download"):
                ns.download = False  # never reach the network while planning
            preparers()[engine_ds].check(ns)
        except SystemExit:
            continue  # no such preparer: the prepare job will say so
        except ImportError as exc:
            logger.warning(f"data_prep not importable ({exc}); cannot check the source of {engine_ds}")
        except Exception as exc:  # noqa: BLE001 - data_prep's SourceMissing / DataError
            first = (str(exc).splitlines()[0] if str(exc) else type(exc).__name__).replace("pass --source; ", "")
            state = f"= {source!r}" if source else "is not set"
            problems.append(f"{RESOURCES}/{engine_ds} is not prepared and {key} {state}: {first}")
    return problems


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


# Run ids of the main table (train `priority`).
MAIN_RUN_IDS = set(CELLS_DF.loc[(CELLS_DF["experiment"] == "main") & (CELLS_DF["status"] == "run"), "run_id"])

_PLANNING_FLAGS = {"--dry-run", "--dryrun", "--lint", "--unlock", "--summary", "--detailed-summary", "--dag",
                   "--rulegraph", "--filegraph", "--list-rules", "--report", "--touch"}


def planning_only(argv=None):
    """True when Snakemake only plans or inspects (dry run, lint, unlock, ...): nothing will be prepared.

    Read from the command line because the executor (hence workflow.dryrun) is not known while the
    Snakefile is parsed.
    """
    argv = sys.argv[1:] if argv is None else argv
    return any(a.split("=")[0] in _PLANNING_FLAGS or re.fullmatch(r"-[a-zA-Z]*[nt][a-zA-Z]*", a) for a in argv)


logger.info(
    f"fedgmr-repro: {len(CELLS)} cells in {len(GRIDS)} experiments, {len(RUNS)} unique runs, "
    f"{len(not_run_cells())} cells not run; outputs in {RESULTS}/"
)
