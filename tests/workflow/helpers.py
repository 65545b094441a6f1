"""Helpers of the workflow tests: paths, a snakemake runner and a fixture tidy-table generator."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
PAPER_FIGURES = REPO / "paper_figures"
REFERENCE = PAPER_FIGURES / "reference" / "paper-results.csv"
sys.path.insert(0, str(REPO / "workflow" / "lib"))
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.insert(0, str(PAPER_FIGURES))


def snakemake(*args, env=None, timeout=600, cwd=REPO) -> subprocess.CompletedProcess:
    """Run snakemake in the repository and return the finished process (stdout and stderr merged)."""
    full_env = dict(os.environ, **(env or {}))
    full_env["PATH"] = f"{BIN}{os.pathsep}{full_env.get('PATH', '')}"
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """Parse the `Job stats` block of a snakemake (dry) run."""
    counts, inside = {}, False
    for line in output.splitlines():
        if line.startswith("Job stats"):
            inside, counts = True, {}
            continue
        if inside:
            parts = line.split()
            if parts and parts[0] == "total":
                inside = False
            elif len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
    return counts


def fake_run(n_ticks: int, dt: float, final: float, rate: float, density_end: float = 1.0,
             seed: int = 0) -> pd.DataFrame:
    """A plausible metrics.csv: saturating accuracy, rising density."""
    rng = np.random.default_rng(seed)
    tick = np.arange(n_ticks)
    t = tick * dt
    acc = np.clip(final * (1 - np.exp(-rate * t)) + rng.normal(0, 0.005, n_ticks), 0, 1)
    dens = np.minimum(0.21 + (density_end - 0.21) * tick / max(n_ticks - 1, 1), 1.0)
    return pd.DataFrame({
        "tick": tick, "round": tick * 2, "virtual_time": t, "wall_time": tick * 0.1, "acc_server": acc,
        "acc_avg": acc * 0.99, "acc": acc, "loss_server": 1 - acc, "avg_density": dens,
        "upload_mb": tick * 1.0, "download_mb": tick * 2.0,
    })


def fixture_table(experiment: str, labels: list[str], datasets=("femnist", "stackoverflow"), seeds=(0, 1),
                  semantics=("released",), patience=(7,), densities=(None,), families=None) -> pd.DataFrame:
    """A tidy table as `collect` writes it, with the columns and dtypes of collect.CELL/METRIC_COLUMNS."""
    from collect import CELL_COLUMNS, METRIC_COLUMNS

    frames = []
    for d_i, dataset in enumerate(datasets):
        for m_i, label in enumerate(labels):
            for sem in semantics:
                for p in patience:
                    for dens in densities:
                        for seed in seeds:
                            run = fake_run(40, 10.0, 0.6 + 0.02 * m_i + (0.01 if sem == "clean" else 0),
                                           0.01 * (1 + (dens or 0.5)), seed=seed + 7 * m_i)
                            cell = {
                                "experiment": experiment, "dataset": dataset, "engine_dataset": dataset,
                                "split": "noniid", "heterogeneity": "high", "method_label": label,
                                "family": (families or {}).get(label, label), "method": f"m{m_i}",
                                "semantics": sem, "seed": seed, "patience": p, "fixed_density": dens,
                                "budget": 150.0, "run_id": f"{d_i}{m_i}{seed}{p}abcdef"[:12],
                            }
                            for k, v in cell.items():
                                run[k] = v
                            frames.append(run)
    table = pd.concat(frames, ignore_index=True)
    return table[list(CELL_COLUMNS) + list(METRIC_COLUMNS)].astype({**CELL_COLUMNS, **METRIC_COLUMNS})
