"""Provenance that does not rerun the world (issue 11, item 3).

A finished tiny grid, planned again with another path to the same Python and another folder holding the
same prepared data (a fresh copy: newer mtimes), has nothing to do. A changed run setting does replan, so
the check can fail.
"""

import os
import shutil
import sys

from tests.workflow.helpers import job_counts, snakemake

CONFIG = """
results: {results}
resources: {resources}
experiments: [main]
seeds: [0]
tolerate_failed_runs: false
subset:
  all: {{dataset: [femnist], split: [noniid], heterogeneity: [high], method: [fedgmr]}}
datasets:
  femnist: {{engine: fmnist, partition: {{iid: iid, noniid: noniid}}, budget: 20}}
run_overrides:
  model: {{width: 0.125}}
  schedule: {{interval: 2, max_rounds: {rounds}, max_time: 40.0}}
  evaluation: {{max_test: 100}}
"""


def test_finished_grid_is_not_replanned_for_other_paths(tmp_path, fmnist_data):
    results = tmp_path / "results"
    first, second = tmp_path / "data_a", tmp_path / "data_b"
    shutil.copytree(fmnist_data, first / "fmnist")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.format(results=results, resources=first, rounds=4))
    target = f"{results}/tables/main.parquet"
    env = {"OMP_NUM_THREADS": "1"}
    done = snakemake("--configfile", str(cfg), "--config", f"python={sys.executable}", "--cores", "1",
                     "--nolock", target, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    assert job_counts(done.stdout).get("train") == 1
    # The train rule's log names the run and ends with the engine's closing line.
    (log,) = (results / "logs" / "train").glob("*.log")
    text = log.read_text()
    assert "fedgmr-fmnist-noniid-high-s0" in text.splitlines()[0]
    assert "INFO fedgmr.progress: run complete: final acc=" in text, text

    # Same data under another path (copied later, so newer), the same Python under another path.
    shutil.copytree(fmnist_data, second / "fmnist")
    (tmp_path / "bin").mkdir()
    other_python = tmp_path / "bin" / "python3"
    os.symlink(sys.executable, other_python)
    cfg.write_text(CONFIG.format(results=results, resources=second, rounds=4))
    again = snakemake("--configfile", str(cfg), "--config", f"python={other_python}", "--cores", "1",
                      "--nolock", "-n", target, env=env, timeout=600)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "Nothing to be done" in again.stdout, again.stdout[-4000:]

    # Control: a setting that changes the result is a new run.
    cfg.write_text(CONFIG.format(results=results, resources=second, rounds=6))
    changed = snakemake("--configfile", str(cfg), "--config", f"python={other_python}", "--cores", "1",
                        "--nolock", "-n", target, env=env, timeout=600)
    assert job_counts(changed.stdout).get("train") == 1, changed.stdout[-4000:]
