"""Result files of a run (design §3) and the paper's table metric (reference §9.3).

``metrics.csv``: one row per evaluation tick; ``clients.csv``: one row per tick x client; ``config.json``:
the resolved config; ``run.json``: versions, device, wall time, status; ``timing.csv``: wall-clock seconds
at each tick. ``metrics.csv`` and ``clients.csv`` hold only what the config determines, so a run and its
killed-and-resumed twin write byte-identical files; everything that depends on the machine (wall time)
lives in ``run.json`` and ``timing.csv``. Every file is written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

METRIC_COLUMNS = [
    "tick",
    "round",
    "virtual_time",
    "acc_server",
    "acc_avg",
    "acc",
    "loss_server",
    "avg_density",
    "rho_min",
    "upload_mb",
    "download_mb",
]
CLIENT_COLUMNS = ["tick", "client", "tier", "density", "staleness", "trained", "arrived", "acc_client"]
TIMING_COLUMNS = ["tick", "wall_time_s"]


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow(
            {
                k: (
                    "" if isinstance(v, float) and math.isnan(v) else (repr(v) if isinstance(v, float) else v)
                )
                for k, v in row.items()
            }
        )
    return buf.getvalue()


def write_tables(out: Path, metrics: list[dict], clients: list[dict], timing: list[dict] | None = None) -> None:
    atomic_write(out / "metrics.csv", _csv(metrics, METRIC_COLUMNS))
    atomic_write(out / "clients.csv", _csv(clients, CLIENT_COLUMNS))
    if timing is not None:
        atomic_write(out / "timing.csv", _csv(timing, TIMING_COLUMNS))


def write_config(out: Path, cfg: dict) -> None:
    from fedgmr.config import run_id

    atomic_write(out / "config.json", json.dumps(cfg | {"run_id": run_id(cfg)}, indent=2, sort_keys=True))


def _git_sha() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def write_run_info(out: Path, cfg: dict, sim, status: str) -> None:
    import torch

    import fedgmr
    from fedgmr.config import run_id

    info = {
        "status": status,
        "run_id": run_id(cfg),
        "method": cfg["method"],
        "dataset": cfg["dataset"]["name"],
        "rounds": sim.net.train_number[0],
        "virtual_time": sim.net.time,
        "wall_time_s": round(sim.wall_elapsed, 3),
        "ticks": sim.tick_index,
        "device": str(sim.device),
        "threads": torch.get_num_threads(),
        "versions": {
            "fedgmr": fedgmr.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "git_sha": _git_sha(),
        "restoration_events": getattr(sim.restoration, "events", []),
    }
    atomic_write(out / "run.json", json.dumps(info, indent=2, default=str))


def is_complete(out: Path, cfg: dict) -> bool:
    """True when ``out`` holds the finished run of exactly this config."""
    from fedgmr.config import run_id

    try:
        info = json.loads((Path(out) / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        info.get("status") == "complete"
        and info.get("run_id") == run_id(cfg)
        and (Path(out) / "metrics.csv").is_file()
    )


def table_value(times, accs, budget: float, half_window: int = 10) -> tuple[float, float]:
    """The paper's table metric (reference §9.3): the first evaluation with time > budget (else the last),
    then mean and population std of acc over evaluations [idx-10, idx+10), times 100."""
    times, accs = np.asarray(times, dtype=float), np.asarray(accs, dtype=float)
    if len(times) == 0:
        return math.nan, math.nan
    after = np.nonzero(times > budget)[0]
    idx = int(after[0]) if len(after) else len(times) - 1
    window = accs[max(0, idx - half_window) : idx + half_window] * 100.0
    return float(window.mean()), float(window.std())


def time_to_accuracy(times, accs, target: float) -> float:
    """Virtual time of the first evaluation whose accuracy reaches ``target`` (nan if never)."""
    times, accs = np.asarray(times, dtype=float), np.asarray(accs, dtype=float)
    hit = np.nonzero(accs >= target)[0]
    return float(times[hit[0]]) if len(hit) else math.nan
