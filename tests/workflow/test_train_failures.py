"""The train rule's failure paths end to end (issue 8 item 22).

- An engine error under `tolerate_failed_runs` is recorded in run.json and its cell is listed as not run.
- A run killed by SIGKILL (what the OOM killer sends) is not recorded: the job fails and the next plan still
  has the run to do, instead of "Nothing to be done".
"""

import json
import shutil
import sys

from tests.workflow.helpers import job_counts, snakemake

CONFIG = """
results: {results}
resources: {resources}
python: {python}
experiments: [main]
seeds: [0]
tolerate_failed_runs: {tolerate}
subset:
  all: {{dataset: [femnist], split: [noniid], heterogeneity: [high], method: [fedgmr]}}
datasets:
  femnist: {{engine: fmnist, partition: {{iid: iid, noniid: noniid}}, budget: 20}}
run_overrides:
  model: {{width: 0.125}}
  schedule: {{interval: 2, max_rounds: 4, max_time: 40.0}}
  evaluation: {{max_test: 100}}
"""
# Stands in for the interpreter: the engine process kills itself with SIGKILL, everything else runs normally.
OOM_PYTHON = """#!/bin/sh
case "$*" in *"-m fedgmr run"*) kill -9 $$;; esac
exec {python} "$@"
"""


def _setup(tmp_path, data, tolerate, python=sys.executable):
    shutil.copytree(data, tmp_path / "data" / "fmnist")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.format(results=tmp_path / "results", resources=tmp_path / "data", python=python,
                                 tolerate=str(tolerate).lower()))
    return cfg, f"{tmp_path}/results/tables/main.parquet"


def test_engine_error_is_recorded_when_tolerated(tmp_path, fmnist_data):
    cfg, target = _setup(tmp_path, fmnist_data, tolerate=True)
    (tmp_path / "data" / "fmnist" / "train_x.npy").write_bytes(b"not an array")  # the engine refuses the data
    proc = snakemake("--configfile", str(cfg), "--cores", "1", "--nolock", target, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    (run_json,) = (tmp_path / "results" / "runs").glob("*/run.json")
    info = json.loads(run_json.read_text())
    assert info["status"] == "failed" and info["error"], info
    cells = (tmp_path / "results" / "tables" / "main.cells.csv").read_text()
    assert "failed" in cells


def test_killed_run_is_retried_not_recorded(tmp_path, fmnist_data):
    fake = tmp_path / "oom-python"
    fake.write_text(OOM_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    cfg, target = _setup(tmp_path, fmnist_data, tolerate=True, python=fake)
    proc = snakemake("--configfile", str(cfg), "--cores", "1", "--nolock", target, timeout=600)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert not list((tmp_path / "results" / "runs").glob("*/run.json"))  # nothing recorded as failed
    log = next((tmp_path / "results" / "logs" / "train").glob("*.log")).read_text()
    assert "killed by SIGKILL" in log or "SIGKILL" in proc.stdout, (log, proc.stdout[-2000:])
    again = snakemake("--configfile", str(cfg), "--cores", "1", "--nolock", "-n", target, timeout=600)
    assert job_counts(again.stdout).get("train") == 1, again.stdout[-3000:]
